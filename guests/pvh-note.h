/* pvh-note.h: the ELF note XEN_ELFNOTE_PHYS32_ENTRY (type 18, name "Xen") that tells a PVH
 * loader to enter at pvh_start in 32-bit protected mode, paging off, EBX = hvm_start_info.
 * Shared by the ELF32 (pvh) and ELF64 (pvh64) PVH guests. */
#ifndef PVH_NOTE_H
#define PVH_NOTE_H

#define XEN_ELFNOTE_PHYS32_ENTRY 18

    .section .note.Xen, "a", @note
    .p2align 2
    .long 2f - 1f                   /* namesz */
    .long 4f - 3f                   /* descsz */
    .long XEN_ELFNOTE_PHYS32_ENTRY  /* type */
1:  .asciz "Xen"
2:  .p2align 2
3:  .long pvh_start                 /* desc: the 32-bit entry point */
4:  .p2align 2

#endif

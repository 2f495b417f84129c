/* bzimage-header.S: the boot sector and setup sector of the bzimage guest, laid out as
 * Linux's arch/x86/boot/header.S lays out a real bzImage (Documentation/arch/x86/boot.rst):
 * the setup header at 0x1F1, 0xAA55 at 0x1FE, "HdrS" at 0x202. The real-mode code is never
 * run (gdbvmm and QEMU's 64-bit path enter at the protected-mode kernel + 0x200), so the
 * sectors hold nothing else. SYSSIZE and INIT_SIZE come from bzimage.ld. */
#define SETUP_SECTS 1           /* bzimage.ld's SETUP_SECTS: the kernel starts at (1+1)*512 */
/* The bzkernel guest builds this header again for its own load address (Linux's 16 MiB). */
#ifndef PREF_ADDRESS
#define PREF_ADDRESS 0x100000
#endif
#ifndef KERNEL_ALIGNMENT
#define KERNEL_ALIGNMENT 0x100000
#endif

    .section .header, "a"
    .org 0x1F1
setup_sects:        .byte SETUP_SECTS
root_flags:         .word 0
syssize:            .long SYSSIZE           /* protected-mode kernel size in 16-byte units */
ram_size:           .word 0
vid_mode:           .word 0xFFFF            /* "normal" */
root_dev:           .word 0
boot_flag:          .word 0xAA55
    /* 0x200: the jump over the header; its displacement says where the header ends. */
                    .byte 0xEB, header_end - 1f
1:
header:             .ascii "HdrS"
version:            .word 0x020F            /* boot protocol 2.15 */
realmode_swtch:     .long 0
start_sys_seg:      .word 0x1000
kernel_version:     .word 0
type_of_loader:     .byte 0
loadflags:          .byte 0x01              /* LOADED_HIGH: a bzImage */
setup_move_size:    .word 0x8000
code32_start:       .long PREF_ADDRESS
ramdisk_image:      .long 0
ramdisk_size:       .long 0
bootsect_kludge:    .long 0
heap_end_ptr:       .word 0
ext_loader_ver:     .byte 0
ext_loader_type:    .byte 0
cmd_line_ptr:       .long 0
initrd_addr_max:    .long 0x7FFFFFFF
kernel_alignment:   .long KERNEL_ALIGNMENT
relocatable_kernel: .byte 1
min_alignment:      .byte 12
xloadflags:         .word 0x0001            /* XLF_KERNEL_64: entry at +0x200 in long mode */
cmdline_size:       .long 2047
hardware_subarch:   .long 0
hardware_subarch_data: .quad 0
payload_offset:     .long 0
payload_length:     .long 0
setup_data:         .quad 0
pref_address:       .quad PREF_ADDRESS      /* the linker script links the kernel here */
init_size:          .long INIT_SIZE
handover_offset:    .long 0
kernel_info_offset: .long 0
header_end:
    .org (SETUP_SECTS + 1) * 512

    .section .note.GNU-stack, "", @progbits

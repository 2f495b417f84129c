/* pvh64-entry.S: PVH entry of the pvh64 guest, an ELF64 image like Linux's vmlinux. The
 * XEN_ELFNOTE_PHYS32_ENTRY note names a 32-bit entry point (protected mode, paging off,
 * EBX = hvm_start_info); the stub builds identity page tables for the first 1 GiB, enters long
 * mode and calls pvh_main(start_info) in 64-bit code, which gdb debugs with the ELF64 symbols. */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define CR0_PE       (1 << 0)
#define CR0_MP       (1 << 1)
#define CR0_EM       (1 << 2)
#define CR0_PG       (1 << 31)
#define CR4_PAE      (1 << 5)
#define CR4_OSFXSR   (1 << 9)
#define CR4_OSXMMEXCPT (1 << 10)
#define MSR_EFER     0xC0000080
#define EFER_LME     (1 << 8)
#define PTE_PRESENT_WRITABLE 0x3
#define PDE_LARGE    0x80

    .cfi_sections .debug_frame      /* CFI for gdb, not .eh_frame */

    .section .note.Xen, "a", @note
    .p2align 2
    .long 2f - 1f                   /* namesz */
    .long 4f - 3f                   /* descsz */
    .long XEN_ELFNOTE_PHYS32_ENTRY  /* type */
1:  .asciz "Xen"
2:  .p2align 2
3:  .long pvh_start                 /* desc: the 32-bit entry point */
4:  .p2align 2

    .section .text.entry, "ax"
    .code32
    .globl pvh_start
    .type pvh_start, @function
pvh_start:
    cli
    cld
    mov %ebx, %esi                  /* keep the start_info pointer */
    lgdt gdt64_descriptor
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $boot_stack_top, %esp

    xor %eax, %eax                  /* zero .bss, page tables included */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    rep stosl

    mov $boot_pd, %edi              /* 512 x 2 MiB identity pages: 0 .. 1 GiB */
    mov $(PDE_LARGE | PTE_PRESENT_WRITABLE), %eax
    mov $512, %ecx
1:
    mov %eax, (%edi)
    add $0x200000, %eax
    add $8, %edi
    loop 1b
    movl $(boot_pdpt + PTE_PRESENT_WRITABLE), boot_pml4
    movl $(boot_pd + PTE_PRESENT_WRITABLE), boot_pdpt

    mov %cr4, %eax
    or $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov %cr0, %eax
    and $~CR0_EM, %eax
    or $(CR0_PG | CR0_MP | CR0_PE), %eax
    mov %eax, %cr0
    ljmp $0x08, $long_mode
    .size pvh_start, . - pvh_start

    .code64
    .type long_mode, @function
long_mode:
    .cfi_startproc
    .cfi_undefined rip              /* the outermost frame, for gdb's backtrace */
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $boot_stack_top, %rsp
    mov %esi, %edi                  /* zero-extends: pvh_main(start_info) */
    xor %ebp, %ebp
    call pvh_main
2:
    cli
    hlt
    jmp 2b
    .cfi_endproc
    .size long_mode, . - long_mode

    .section .rodata
    .p2align 3
gdt64:
    .quad 0
    .quad 0x00AF9B000000FFFF        /* 0x08: 64-bit code */
    .quad 0x00CF93000000FFFF        /* 0x10: data */
gdt64_end:
    .p2align 2
    .word 0
gdt64_descriptor:
    .word gdt64_end - gdt64 - 1
    .long gdt64

    .section .bss
    .p2align 12
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096

    .section .stack, "aw", @nobits
    .p2align 4
    .skip 16384
boot_stack_top:

    .section .note.GNU-stack, "", @progbits

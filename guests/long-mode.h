/* long-mode.h: what the 32-bit entry stubs of the ELF64 multiboot and PVH guests share: a
 * macro that switches from 32-bit protected mode (paging off) to 64-bit long mode with identity
 * page tables for the first 1 GiB (2 MiB pages) and SSE enabled, then far-jumps to `target`;
 * and a macro for the GDT and page tables it uses. Clobbers eax, ecx, edi; keeps esi, ebp. */
#ifndef LONG_MODE_H
#define LONG_MODE_H

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

.macro ENTER_LONG_MODE target
    lgdt gdt64_descriptor
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %fs
    mov %eax, %gs
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
    ljmp $0x08, $\target
.endm

.macro LONG_MODE_DATA
    /* The same selectors gdbvmm's ELF64 direct boot uses: 0x08 64-bit code, 0x10 data. */
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

.endm

#endif

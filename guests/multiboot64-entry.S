/* multiboot64-entry.S: Multiboot v1 header and entry for ELF64 guests (demo-multiboot).
 * A multiboot loader cannot load ELF64 by its program headers, so the header uses the
 * a.out kludge (flag bit 16): it gives the load addresses itself, from symbols that
 * multiboot-kludge.ld defines. The loader enters _start in 32-bit protected mode, paging off,
 * EAX = 0x2BADB002, EBX = multiboot information. The stub then builds what long mode needs:
 * a GDT, identity page tables for the first 1 GiB (2 MiB pages), PAE + EFER.LME + paging,
 * SSE enabled (CR4.OSFXSR|OSXMMEXCPT, CR0.MP, CR0.EM clear), a stack, and calls kmain(mbi)
 * in 64-bit mode, with mbi = 0 if EAX did not hold the multiboot magic. */
#include "multiboot.h"

#define MB_FLAGS (MULTIBOOT_PAGE_ALIGN | MULTIBOOT_MEMORY_INFO | MULTIBOOT_AOUT_KLUDGE)

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

    .section .multiboot, "a"
    .p2align 2
multiboot_header:
    .long MULTIBOOT_HEADER_MAGIC
    .long MB_FLAGS
    .long -(MULTIBOOT_HEADER_MAGIC + MB_FLAGS)
    .long multiboot_header          /* header_addr */
    .long __load_start              /* load_addr: file bytes are loaded from here ... */
    .long __load_end                /* load_end_addr: ... to here */
    .long __image_end               /* bss_end_addr: zeroed up to here */
    .long _start                    /* entry_addr */

    .section .text.entry, "ax"
    .code32
    .globl _start
    .type _start, @function
_start:
    cli
    cld
    mov %eax, %ebp                  /* keep the magic and the information pointer */
    mov %ebx, %esi
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
    ljmp $0x08, $long_mode
    .size _start, . - _start

    .code64
    .type long_mode, @function
long_mode:
    .cfi_startproc
    .cfi_undefined rip              /* the outermost frame, for gdb's backtrace */
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $boot_stack_top, %rsp       /* the upper halves of registers are undefined here */
    xor %edi, %edi
    cmp $MULTIBOOT_BOOTLOADER_MAGIC, %ebp
    jne 2f
    mov %esi, %edi                  /* zero-extends: kmain(mbi) */
2:
    xor %ebp, %ebp
    call kmain
3:
    cli
    hlt
    jmp 3b
    .cfi_endproc
    .size long_mode, . - long_mode

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

    .section .stack, "aw", @nobits
    .p2align 4
    .skip 16384
boot_stack_top:

    .section .note.GNU-stack, "", @progbits

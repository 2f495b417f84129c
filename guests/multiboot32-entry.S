/* multiboot32-entry.S: Multiboot v1 header and entry for the ELF32 guests (demo-multiboot32,
 * smp-multiboot). The loader enters _start in 32-bit protected mode, paging off, with
 * EAX = 0x2BADB002 and EBX = multiboot information. The stub loads its own GDT (the loader's
 * may be gone), zeroes .bss, takes its own stack and calls kmain(mbi), with mbi = 0 if EAX
 * does not hold the multiboot magic. */
#include "multiboot.h"

#define MB_FLAGS (MULTIBOOT_PAGE_ALIGN | MULTIBOOT_MEMORY_INFO)

    .cfi_sections .debug_frame      /* CFI for gdb, not .eh_frame */

    .section .multiboot, "a"
    .p2align 2
multiboot_header:
    .long MULTIBOOT_HEADER_MAGIC
    .long MB_FLAGS
    .long -(MULTIBOOT_HEADER_MAGIC + MB_FLAGS)

    .section .text.entry, "ax"
    .code32
    .globl _start
    .type _start, @function
_start:
    .cfi_startproc
    .cfi_undefined eip              /* the outermost frame, for gdb's backtrace */
    cli
    cld
    mov %eax, %ebp                  /* keep the magic and the information pointer */
    mov %ebx, %esi
    lgdt gdt32_descriptor
    ljmp $0x08, $1f
1:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %fs
    mov %eax, %gs
    mov %eax, %ss
    mov $boot_stack_top, %esp
    xor %eax, %eax                  /* zero .bss (the stacks live after it) */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    rep stosl
    xor %eax, %eax
    cmp $MULTIBOOT_BOOTLOADER_MAGIC, %ebp
    jne 2f
    mov %esi, %eax
2:
    push %eax                       /* keeps the stack 16-aligned at the call */
    push %eax
    push %eax
    push %eax
    xor %ebp, %ebp
    call kmain
3:
    cli
    hlt
    jmp 3b
    .cfi_endproc
    .size _start, . - _start

    /* Flat 4 GiB segments; the accessed bits are preset so the CPU never writes here. */
    .section .rodata
    .p2align 3
    .globl gdt32
gdt32:
    .quad 0
    .quad 0x00CF9B000000FFFF        /* 0x08: 32-bit code */
    .quad 0x00CF93000000FFFF        /* 0x10: data */
gdt32_end:
    .p2align 2
    .word 0
gdt32_descriptor:
    .word gdt32_end - gdt32 - 1
    .long gdt32

    .section .stack, "aw", @nobits
    .p2align 4
    .skip 16384
boot_stack_top:

    .section .note.GNU-stack, "", @progbits

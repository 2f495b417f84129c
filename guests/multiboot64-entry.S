/* multiboot64-entry.S: Multiboot v1 header and entry for ELF64 guests (demo-multiboot).
 * A multiboot loader cannot load ELF64 by its program headers, so the header uses the
 * a.out kludge (flag bit 16): it gives the load addresses itself, from symbols that
 * multiboot-kludge.ld defines. The loader enters _start in 32-bit protected mode, paging off,
 * EAX = 0x2BADB002, EBX = multiboot information. The stub then builds what long mode needs:
 * a GDT, identity page tables for the first 1 GiB (2 MiB pages), PAE + EFER.LME + paging,
 * SSE enabled (CR4.OSFXSR|OSXMMEXCPT, CR0.MP, CR0.EM clear), a stack, and calls kmain(mbi)
 * in 64-bit mode, with mbi = 0 if EAX did not hold the multiboot magic. */
#include "multiboot.h"
#include "long-mode.h"

#define MB_FLAGS (MULTIBOOT_PAGE_ALIGN | MULTIBOOT_MEMORY_INFO | MULTIBOOT_AOUT_KLUDGE)


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
    ENTER_LONG_MODE long_mode
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

    LONG_MODE_DATA

    .section .stack, "aw", @nobits
    .p2align 4
    .skip 16384
boot_stack_top:

    .section .note.GNU-stack, "", @progbits

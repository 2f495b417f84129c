/* pvh64-entry.S: PVH entry of the pvh64 guest, an ELF64 image like Linux's vmlinux. The
 * XEN_ELFNOTE_PHYS32_ENTRY note names a 32-bit entry point (protected mode, paging off,
 * EBX = hvm_start_info); the stub builds identity page tables for the first 1 GiB, enters long
 * mode and calls pvh_main(start_info) in 64-bit code, which gdb debugs with the ELF64 symbols. */
#include "long-mode.h"

#include "pvh-note.h"

    .cfi_sections .debug_frame      /* CFI for gdb, not .eh_frame */


    .section .text.entry, "ax"
    .code32
    .globl pvh_start
    .type pvh_start, @function
pvh_start:
    cli
    cld
    mov %ebx, %esi                  /* keep the start_info pointer */
    ENTER_LONG_MODE long_mode
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

    LONG_MODE_DATA

    .section .stack, "aw", @nobits
    .p2align 4
    .skip 16384
boot_stack_top:

    .section .note.GNU-stack, "", @progbits

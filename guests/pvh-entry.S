/* pvh-entry.S: PVH entry of the pvh guest. The ELF note XEN_ELFNOTE_PHYS32_ENTRY (type 18,
 * name "Xen") tells the loader where to enter: 32-bit protected mode, paging off, flat
 * segments, EBX = physical address of the hvm_start_info structure. */
#include "pvh-note.h"

    .cfi_sections .debug_frame      /* CFI for gdb, not .eh_frame */


    .section .text.entry, "ax"
    .code32
    .globl pvh_start
    .type pvh_start, @function
pvh_start:
    .cfi_startproc
    .cfi_undefined eip              /* the outermost frame, for gdb's backtrace */
    cli
    cld
    mov $boot_stack_top, %esp
    sub $12, %esp                   /* 16-aligned at the call */
    push %ebx
    xor %ebp, %ebp
    call pvh_main
1:
    cli
    hlt
    jmp 1b
    .cfi_endproc
    .size pvh_start, . - pvh_start

    .section .stack, "aw", @nobits
    .p2align 4
    .skip 16384
boot_stack_top:

    .section .note.GNU-stack, "", @progbits

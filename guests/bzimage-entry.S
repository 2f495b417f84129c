/* bzimage-entry.S: the start of the bzimage guest's protected-mode kernel. As in Linux,
 * the 32-bit entry is at offset 0 (unused here: it only parks) and the 64-bit entry,
 * startup_64, at offset 0x200, where the 64-bit boot protocol enters in long mode with
 * RSI = boot_params. RSI is left as it came, so gdb sees it in bzimage_main too. */
    .cfi_sections .debug_frame      /* CFI for gdb, not .eh_frame */

    .section .text.head, "ax"
    .code64
    .globl startup_32
startup_32:
    cli
    hlt
    jmp startup_32

    .org 0x200
    .globl startup_64
    .type startup_64, @function
startup_64:
    .cfi_startproc
    .cfi_undefined rip              /* the outermost frame, for gdb's backtrace */
    cli
    cld
    lea boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %rsi, %rdi                  /* bzimage_main(boot_params) */
    call bzimage_main
1:
    cli
    hlt
    jmp 1b
    .cfi_endproc
    .size startup_64, . - startup_64

    .section .stack, "aw", @nobits
    .p2align 4
    .skip 16384
boot_stack_top:

    .section .note.GNU-stack, "", @progbits

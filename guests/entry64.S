/* entry64.S: entry of the single-CPU ELF64 direct-boot guests (demo-elf64, watch, fault, halt).
 * gdbvmm enters every vCPU here in 64-bit mode with RDI = vCPU index, RSI = vCPU count and
 * RSP at the top of a stack it provides. vCPU 0 runs kmain(0); any other vCPU parks. */
    .cfi_sections .debug_frame      /* CFI for gdb, not .eh_frame */

    .section .text.entry, "ax"
    .code64
    .globl _start
    .type _start, @function
_start:
    .cfi_startproc
    .cfi_undefined rip              /* the outermost frame, for gdb's backtrace */
    xor %ebp, %ebp
    test %rdi, %rdi
    jnz park
    xor %edi, %edi          /* kmain(0): no multiboot information */
    call kmain
park:
    cli
    hlt
    jmp park
    .cfi_endproc
    .size _start, . - _start

    .section .note.GNU-stack, "", @progbits

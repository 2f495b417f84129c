/* interrupt-entry.h (for .S files): INTERRUPT_ENTRY name, handler defines `name`, an interrupt
 * or trap handler that keeps the caller-saved registers, calls the C function `handler` and
 * returns with iretq. For vectors without an error code. */
.macro INTERRUPT_ENTRY name, handler
    .globl \name
    .type \name, @function
\name:
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    call \handler
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    iretq
    .size \name, . - \name
.endm

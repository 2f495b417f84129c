/* ticks-entry.S: the timer interrupt handler of the ticks guest: keep the caller-saved
 * registers, count in C (which also sends the EOI), return with iretq. */
    .cfi_sections .debug_frame

    .text
    .code64
    .globl tick_entry
    .type tick_entry, @function
tick_entry:
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    call on_tick
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
    .size tick_entry, . - tick_entry

    .section .note.GNU-stack, "", @progbits

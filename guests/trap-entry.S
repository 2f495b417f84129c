/* trap-entry.S: the #BP handler of the trap guest: keep the caller-saved registers, count in C,
 * return with iretq (a trap: the saved RIP is already past the int3). */
    .cfi_sections .debug_frame

    .text
    .code64
    .globl breakpoint_entry
    .type breakpoint_entry, @function
breakpoint_entry:
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    call on_breakpoint
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
    .size breakpoint_entry, . - breakpoint_entry

    .section .note.GNU-stack, "", @progbits

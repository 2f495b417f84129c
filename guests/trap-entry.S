/* trap-entry.S: the #BP handler of the trap guest: keep the caller-saved registers, count in C,
 * return with iretq (a trap: the saved RIP is already past the int3). */
#include "interrupt-entry.h"
    .cfi_sections .debug_frame

    .text
    .code64
    INTERRUPT_ENTRY breakpoint_entry, on_breakpoint

    .section .note.GNU-stack, "", @progbits

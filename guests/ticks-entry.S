/* ticks-entry.S: the timer interrupt handler of the ticks guest (and the serial interrupt
 * handler of the serialirq guest): keep the caller-saved registers, count in C (which also
 * sends the EOI), return with iretq. */
#include "interrupt-entry.h"
    .cfi_sections .debug_frame

    .text
    .code64
    INTERRUPT_ENTRY tick_entry, on_tick

    .section .note.GNU-stack, "", @progbits

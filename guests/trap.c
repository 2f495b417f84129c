/* trap.c: a guest that handles its own breakpoint exceptions. It installs an IDT whose vector 3
 * (#BP) handler counts, executes int3 three times, and exits with the count (status 7): a VMM
 * debugging it must deliver the guest's own int3 to the guest, not take it for a gdb breakpoint. */
#include "guest.h"
#include "idt.h"
#include "serial.h"

static struct idt_gate idt[32] __attribute__((aligned(16)));
volatile int breakpoints_seen = 0;

void breakpoint_entry(void);   /* trap-entry.S: saves registers, calls on_breakpoint, iretq */

void on_breakpoint(void)
{
    breakpoints_seen++;
}

void install_idt(void)
{
    idt_set_gate(idt, 3, breakpoint_entry, IDT_TRAP_GATE);
    idt_load(idt, 32);
}

void trigger(void)
{
    __asm__ volatile("int3");
}

__attribute__((noreturn)) void kmain(void)
{
    serial_puts("trap guest\n");
    install_idt();
    trigger();
    trigger();
    trigger();
    serial_puts("trap guest done\n");
    debug_exit((uint8_t)breakpoints_seen);
}

/* trap.c: a guest that handles its own breakpoint exceptions. It installs an IDT whose vector 3
 * (#BP) handler counts, executes int3 three times, and exits with the count (status 7): a VMM
 * debugging it must deliver the guest's own int3 to the guest, not take it for a gdb breakpoint. */
#include "guest.h"
#include "serial.h"

struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));

struct idt_pointer {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

static struct idt_gate idt[32] __attribute__((aligned(16)));
volatile int breakpoints_seen = 0;

void breakpoint_entry(void);   /* trap-entry.S: saves registers, calls on_breakpoint, iretq */

void on_breakpoint(void)
{
    breakpoints_seen++;
}

void install_idt(void)
{
    uint64_t handler = (uint64_t)breakpoint_entry;
    idt[3].offset_low = (uint16_t)handler;
    idt[3].selector = 0x08;
    idt[3].ist = 0;
    idt[3].type_attr = 0x8F;   /* present, DPL 0, 64-bit trap gate */
    idt[3].offset_mid = (uint16_t)(handler >> 16);
    idt[3].offset_high = (uint32_t)(handler >> 32);
    struct idt_pointer pointer = { sizeof(idt) - 1, (uint64_t)idt };
    __asm__ volatile("lidt %0" : : "m"(pointer));
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

/* fault.c: a guest that triple-faults on purpose. With an empty IDT, ud2 raises #UD, whose
 * delivery fails (#GP, then #DF), and the CPU shuts down: KVM reports KVM_EXIT_SHUTDOWN. */
#include "guest.h"
#include "serial.h"

struct __attribute__((packed)) idt_descriptor {
    uint16_t limit;
    uintptr_t base;
};

struct idt_descriptor empty_idt = { 0, 0 };

__attribute__((noreturn)) void triple_fault(void)
{
    __asm__ volatile("lidt %0" : : "m"(empty_idt));
    __asm__ volatile("ud2");
    __builtin_unreachable();
}

__attribute__((noreturn)) void kmain(void)
{
    serial_puts("fault guest: triple fault next\n");
    triple_fault();
}

/* portio.c: one of each instruction that leaves KVM for user space while it executes: port
 * output and input (plain and string), an MMIO store and load (0x30000000 is mapped by the
 * boot page tables but has no RAM behind it at the default 128M), and HLT. Each sits between
 * global labels (at_X, after_X), so a test can stepi from at_X and check it lands on after_X,
 * and that the output bytes appear exactly once. The HLT runs only when a debugger sets do_hlt. Ends with debug-exit 0x2a (status 85). */
#include "guest.h"
#include "serial.h"

volatile uint8_t portio_byte = 'B';
volatile uint8_t portio_buffer[4];
/* Set by a debugger that steps over the HLT (with IF = 0 it would halt for good). */
volatile int do_hlt = 0;

__attribute__((noreturn)) void kmain(void)
{
    serial_puts("portio: ");
    __asm__ volatile(
        "mov $0x41, %%al\n"
        ".globl at_out\n at_out: outb %%al, $0xe9\n"
        ".globl after_out\n after_out: nop\n"
        ".globl at_in\n at_in: inb $0xfd, %%al\n"
        ".globl after_in\n after_in: nop\n"
        "lea portio_byte(%%rip), %%rsi\n"
        "mov $0xe9, %%dx\n"
        ".globl at_outs\n at_outs: outsb\n"
        ".globl after_outs\n after_outs: nop\n"
        "lea portio_buffer(%%rip), %%rdi\n"
        "mov $0x3fd, %%dx\n"
        ".globl at_ins\n at_ins: insb\n"
        ".globl after_ins\n after_ins: nop\n"
        "mov $0x30000000, %%ebx\n"
        ".globl at_mmio_store\n at_mmio_store: movl $1, (%%rbx)\n"
        ".globl after_mmio_store\n after_mmio_store: nop\n"
        ".globl at_mmio_load\n at_mmio_load: movl (%%rbx), %%eax\n"
        ".globl after_mmio_load\n after_mmio_load: nop\n"
        "cmpl $0, do_hlt(%%rip)\n"
        "je 1f\n"
        ".globl at_hlt\n at_hlt: hlt\n"
        ".globl after_hlt\n after_hlt: nop\n"
        "1:\n"
        : : : "rax", "rbx", "rdx", "rsi", "rdi", "memory");
    serial_puts("\n");
    debug_exit(0x2a);
}

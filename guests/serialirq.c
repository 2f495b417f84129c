/* serialirq.c: reads a line from COM1 by its receive interrupt only, as an interrupt-driven
 * driver (Linux's 8250) does: IRQ 4 through the IOAPIC (pin 4 -> vector 0x24) to the local
 * APIC, with the UART's IER.ERBFI and MCR.OUT2 set. Multiboot with the a.out kludge, like
 * `ticks` (whose interrupt entry, ticks-entry.S, it shares: `on_tick` is this guest's handler);
 * run it with --cpus 2 or more, so that gdbvmm gives it the in-kernel irqchip. Prints what it
 * received and exits with v = the line's length. */
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

#define APIC_BASE 0xFEE00000UL
#define IOAPIC_BASE 0xFEC00000UL
#define COM1 0x3F8
#define SERIAL_VECTOR 0x24

static struct idt_gate idt[256] __attribute__((aligned(16)));
static uint64_t mmio_pd[512] __attribute__((aligned(4096)));
static char line[64];
volatile unsigned long received;
volatile unsigned long interrupts;
volatile int line_done;

void tick_entry(void);   /* ticks-entry.S: saves registers, calls on_tick, iretq */

static void apic_write(unsigned reg, uint32_t value) { *(volatile uint32_t *)(APIC_BASE + reg) = value; }

static void ioapic_write(unsigned index, uint32_t value)
{
    *(volatile uint32_t *)IOAPIC_BASE = index;
    *(volatile uint32_t *)(IOAPIC_BASE + 0x10) = value;
}

/* The serial interrupt: drain the receiver, as the 8250 driver's handler does. */
void on_tick(void)
{
    interrupts++;
    while (inb(COM1 + 5) & 1) {
        char c = (char)inb(COM1);
        if (c == '\n' || c == '\r') line_done = 1;
        else if (!line_done && received < sizeof line - 1) line[received++] = c;
    }
    apic_write(0xB0, 0);   /* EOI */
}

static void map_mmio(void)
{
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    uint64_t *pml4 = (uint64_t *)(cr3 & ~0xFFFUL);
    uint64_t *pdpt = (uint64_t *)(pml4[0] & 0x000FFFFFFFFFF000UL);
    mmio_pd[(APIC_BASE >> 21) & 511] = APIC_BASE | 0x80 | 0x10 | 0x3;      /* PS, PCD, RW, P */
    mmio_pd[(IOAPIC_BASE >> 21) & 511] = IOAPIC_BASE | 0x80 | 0x10 | 0x3;
    pdpt[APIC_BASE >> 30] = (uint64_t)mmio_pd | 0x3;
    __asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
}

static void install_idt(void)
{
    uint64_t handler = (uint64_t)tick_entry;
    idt[SERIAL_VECTOR].offset_low = (uint16_t)handler;
    idt[SERIAL_VECTOR].selector = 0x08;
    idt[SERIAL_VECTOR].type_attr = 0x8E;   /* present, DPL 0, 64-bit interrupt gate */
    idt[SERIAL_VECTOR].offset_mid = (uint16_t)(handler >> 16);
    idt[SERIAL_VECTOR].offset_high = (uint32_t)(handler >> 32);
    struct idt_pointer pointer = { sizeof(idt) - 1, (uint64_t)idt };
    __asm__ volatile("lidt %0" : : "m"(pointer));
}

__attribute__((noreturn)) void kmain(void)
{
    serial_puts("serialirq guest: type a line\n");
    map_mmio();
    install_idt();
    apic_write(0xF0, 0x1FF);                 /* spurious vector 0xFF, APIC enabled */
    outb(0x21, 0xFF);                        /* mask both 8259s: the IOAPIC delivers IRQ 4 */
    outb(0xA1, 0xFF);
    ioapic_write(0x10 + 2 * 4 + 1, 0);       /* pin 4: to APIC ID 0 */
    ioapic_write(0x10 + 2 * 4, SERIAL_VECTOR); /* fixed, edge, active high, unmasked */
    outb(COM1 + 1, 0x01);                    /* IER: received data available */
    outb(COM1 + 4, 0x0B);                    /* MCR: DTR, RTS, OUT2 (the PC's IRQ gate) */
    __asm__ volatile("sti");
    while (!line_done) __asm__ volatile("pause");
    __asm__ volatile("cli");
    line[received] = 0;
    serial_puts("serialirq guest: you typed: ");
    serial_puts(line);
    serial_puts("\nserialirq guest: interrupts: ");
    serial_putu(interrupts);
    serial_puts("\n");
    debug_exit((uint8_t)received);
}

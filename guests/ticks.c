/* ticks.c: a guest that takes timer interrupts (the local APIC timer, periodic, vector 0x20)
 * while it loops, for testing how single steps treat interrupts. Multiboot with the a.out
 * kludge (multiboot64-entry.S: long mode, the first 1 GiB identity-mapped); run it with
 * --cpus 2 or more, so that gdbvmm gives it the in-kernel irqchip (and so a local APIC). The
 * APIC page at 0xFEE00000 is mapped here with one more 2 MiB page, uncached. `on_tick` counts
 * interrupts; the main loop spins in `tick_loop` until 20 have arrived, then the guest exits
 * with v = 0x10 (status 33). */
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
#define TICK_VECTOR 0x20

static struct idt_gate idt[256] __attribute__((aligned(16)));
static uint64_t apic_pd[512] __attribute__((aligned(4096)));
volatile unsigned long ticks;
volatile unsigned long spins;

void tick_entry(void);   /* ticks-entry.S: saves registers, calls on_tick, iretq */

static void apic_write(unsigned reg, uint32_t value)
{
    *(volatile uint32_t *)(APIC_BASE + reg) = value;
}

void on_tick(void)
{
    ticks++;
    apic_write(0xB0, 0);   /* EOI */
}

static void map_apic(void)
{
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    uint64_t *pml4 = (uint64_t *)(cr3 & ~0xFFFUL);
    uint64_t *pdpt = (uint64_t *)(pml4[0] & 0x000FFFFFFFFFF000UL);
    apic_pd[(APIC_BASE >> 21) & 511] = APIC_BASE | 0x80 | 0x10 | 0x3;   /* PS, PCD, RW, P */
    pdpt[APIC_BASE >> 30] = (uint64_t)apic_pd | 0x3;
    __asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
}

static void install_idt(void)
{
    uint64_t handler = (uint64_t)tick_entry;
    idt[TICK_VECTOR].offset_low = (uint16_t)handler;
    idt[TICK_VECTOR].selector = 0x08;
    idt[TICK_VECTOR].type_attr = 0x8E;   /* present, DPL 0, 64-bit interrupt gate */
    idt[TICK_VECTOR].offset_mid = (uint16_t)(handler >> 16);
    idt[TICK_VECTOR].offset_high = (uint32_t)(handler >> 32);
    struct idt_pointer pointer = { sizeof(idt) - 1, (uint64_t)idt };
    __asm__ volatile("lidt %0" : : "m"(pointer));
}

void tick_loop(void)
{
    while (ticks < 20)
        spins++;
}

__attribute__((noreturn)) void kmain(void)
{
    serial_puts("ticks guest\n");
    map_apic();
    install_idt();
    apic_write(0xF0, 0x1FF);                 /* spurious vector 0xFF, APIC enabled */
    apic_write(0x3E0, 0xB);                  /* divide by 1 */
    apic_write(0x320, TICK_VECTOR | 1 << 17); /* LVT timer: periodic */
    apic_write(0x380, 200000);               /* initial count */
    __asm__ volatile("sti");
    tick_loop();
    __asm__ volatile("cli");
    serial_puts("ticks guest done\n");
    debug_exit(0x10);
}

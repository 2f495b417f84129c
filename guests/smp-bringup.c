/* smp-bringup.c: the multiboot side of smp-multiboot. Multiboot starts only the bootstrap
 * processor; kmain wakes the others with INIT-SIPI-SIPI through the local APIC, counts them
 * as they check in (ap-trampoline.S), then every CPU runs cpu_main from smp.c. */
#include "guest.h"
#include "multiboot.h"
#include "serial.h"
#include "smp.h"

#define LAPIC_BASE        0xFEE00000u
#define LAPIC_SVR         0x0F0       /* spurious-interrupt vector register */
#define LAPIC_ICR_LOW     0x300
#define LAPIC_ICR_HIGH    0x310
#define SVR_APIC_ENABLE   0x100
#define ICR_DELIVERY_BUSY (1u << 12)
#define ICR_ALL_BUT_SELF  (3u << 18)
#define ICR_LEVEL_ASSERT  (1u << 14)
#define ICR_INIT          (5u << 8)
#define ICR_STARTUP       (6u << 8)

#define AP_TRAMPOLINE_ADDR 0x8000u    /* SIPI vector 0x08: real mode at 0x0800:0000 */
#define AP_SETTLE_SPINS    200000     /* polls without a new CPU before the count is final */

extern const char ap_trampoline_start[];
extern const char ap_trampoline_end[];

/* Each AP takes the next index here (ap-trampoline.S); the BSP is CPU 0. */
volatile int next_cpu_index = 1;

static void lapic_write(uint32_t reg, uint32_t value)
{
    *(volatile uint32_t *)(uintptr_t)(LAPIC_BASE + reg) = value;
}

static uint32_t lapic_read(uint32_t reg)
{
    return *(volatile uint32_t *)(uintptr_t)(LAPIC_BASE + reg);
}

static void send_ipi_to_others(uint32_t command)
{
    lapic_write(LAPIC_ICR_HIGH, 0);
    lapic_write(LAPIC_ICR_LOW, ICR_ALL_BUT_SELF | command);
    while (lapic_read(LAPIC_ICR_LOW) & ICR_DELIVERY_BUSY) {
    }
}

static void delay(int spins)
{
    for (volatile int i = 0; i < spins; i++) {
    }
}

/* Returns how many CPUs are running, the BSP included. */
static int start_aps(void)
{
    const char *src = ap_trampoline_start;
    char *dst = (char *)(uintptr_t)AP_TRAMPOLINE_ADDR;
    while (src < ap_trampoline_end) {
        *dst = *src;
        dst++;
        src++;
    }
    lapic_write(LAPIC_SVR, lapic_read(LAPIC_SVR) | SVR_APIC_ENABLE);
    send_ipi_to_others(ICR_INIT | ICR_LEVEL_ASSERT);
    delay(1000);
    send_ipi_to_others(ICR_STARTUP | (AP_TRAMPOLINE_ADDR >> 12));
    delay(1000);
    send_ipi_to_others(ICR_STARTUP | (AP_TRAMPOLINE_ADDR >> 12));

    int online = next_cpu_index;
    int quiet = 0;
    while (quiet < AP_SETTLE_SPINS) {
        int now = next_cpu_index;
        if (now != online) {
            online = now;
            quiet = 0;
        } else {
            quiet++;
        }
    }
    return online < MAX_CPUS ? online : MAX_CPUS;
}

/* Called by ap-trampoline.S on each AP with its index. */
__attribute__((noreturn)) void ap_main(int cpu)
{
    cpu_main(cpu);
}

__attribute__((noreturn)) void kmain(const struct multiboot_info *mbi)
{
    (void)mbi;
    cpu_count = start_aps();
    serial_puts("smp-multiboot: ");
    serial_putu((unsigned long)cpu_count);
    serial_puts(" cpus online\n");
    cpu_main(0);
}

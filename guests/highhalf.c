/* highhalf.c: code that only exists at its link address once the guest's own page tables map
 * it, as a kernel's does (start_kernel before the kernel has built its page tables). kmain maps
 * virtual 512 GiB (PML4 entry 1) to physical 4 MiB with one 2 MiB page, then calls late_work
 * there twice (rewriting late_work's code in between), then late_0 ... late_15 once each. A debugger's breakpoints on them, set before
 * boot, must still hit. Then it unmaps that code and fills its page with data (a kernel
 * freeing its init text), and checks the data. Ends with debug-exit `late_calls` + 0x40
 * (status 0x85 = 133 after the two calls of late_work), plus 0x10 (status 165) if the data
 * was not what it wrote; `late_steps` counts the others (16). */
#include "guest.h"
#include "serial.h"

volatile unsigned long late_calls = 0;

/* PDPT and page directory for PML4 entry 1 (the boot page tables cover the first GiBs). */
static uint64_t high_pdpt[512] __attribute__((aligned(4096), section(".bss.pagetables")));
static uint64_t high_pd[512] __attribute__((aligned(4096), section(".bss.pagetables")));

__attribute__((section(".hightext"), noinline)) void late_work(unsigned long n)
{
    late_calls += n;
}

/* The same code again, right after late_work: kmain copies it over late_work between the two
 * calls, as a kernel patches its own text (alternatives) or a loader copies code in. */
__attribute__((section(".hightext"), noinline)) void late_work_copy(unsigned long n)
{
    late_calls += n;
}

volatile unsigned long late_steps = 0;

#define LATE(n) __attribute__((section(".hightext"), noinline)) void late_##n(void) { late_steps += 1; }
LATE(0) LATE(1) LATE(2) LATE(3) LATE(4) LATE(5) LATE(6) LATE(7)
LATE(8) LATE(9) LATE(10) LATE(11) LATE(12) LATE(13) LATE(14) LATE(15)

static void (*const late_steps_in_order[16])(void) = {
    late_0, late_1, late_2, late_3, late_4, late_5, late_6, late_7,
    late_8, late_9, late_10, late_11, late_12, late_13, late_14, late_15,
};

__attribute__((noreturn)) void kmain(void)
{
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    uint64_t *pml4 = (uint64_t *)(cr3 & ~0xFFFull);
    high_pd[0] = 0x400000 | 0x83;            /* 2 MiB page: present, writable, PS */
    high_pdpt[0] = (uint64_t)high_pd | 0x3;
    pml4[1] = (uint64_t)high_pdpt | 0x3;
    __asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
    serial_puts("highhalf: mapped\n");
    void (*late)(unsigned long) = late_work;   /* a 64-bit absolute address */
    late(1);
    {
        volatile unsigned char *to = (volatile unsigned char *)late_work;
        const volatile unsigned char *from = (const volatile unsigned char *)late_work_copy;
        for (long i = 0; i < (const char *)late_work_copy - (const char *)late_work; i++) to[i] = from[i];
    }
    late(1);
    for (int i = 0; i < 16; i++) late_steps_in_order[i]();
    /* Free that code, as a kernel frees its init text: unmap it, then use its page as data. A
     * debugger's breakpoint still set there must not turn up in the data. */
    pml4[1] = 0;
    __asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
    volatile unsigned char *page = (volatile unsigned char *)0x400000;
    int intact = 1;
    for (int i = 0; i < 4096; i++) page[i] = (unsigned char)(i * 7 + 1);
    for (int i = 0; i < 4096; i++) if (page[i] != (unsigned char)(i * 7 + 1)) intact = 0;
    serial_puts(intact ? "highhalf: freed code's page intact\n" : "highhalf: freed code's page CORRUPTED\n");
    serial_puts("highhalf: done\n");
    debug_exit((uint8_t)(late_calls + 0x40 + (intact ? 0 : 0x10)));
}

/* highhalf.c: code that only exists at its link address once the guest's own page tables map
 * it, as a kernel's does (start_kernel before the kernel has built its page tables). kmain maps
 * virtual 512 GiB (PML4 entry 1) to physical 4 MiB with one 2 MiB page, then calls late_work
 * there twice. A debugger's breakpoint on late_work, set before boot, must still hit. Ends with
 * debug-exit `late_calls` + 0x40 (status 0x85 = 133 after two calls). */
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
    late(1);
    serial_puts("highhalf: done\n");
    debug_exit((uint8_t)(late_calls + 0x40));
}

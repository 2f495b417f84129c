/* smp.c: the per-CPU loop shared by the smp (ELF64 direct) and smp-multiboot guests.
 * Every CPU spins in cpu_loop, counting in ticks[cpu] and calling cpu_work once per turn,
 * until a debugger sets stop_all = 1. Then each CPU counts itself done, and CPU 0 waits for
 * all of them and ends the VM with the debug-exit value cpu_count (status (count << 1) | 1). */
#include "guest.h"
#include "serial.h"
#include "smp.h"

volatile unsigned long ticks[MAX_CPUS];
volatile int stop_all = 0;
volatile int cpus_done = 0;
volatile int last_worker = -1;
int cpu_count = 1;

/* Called on every turn of every CPU: a breakpoint here hits on all of them. */
void cpu_work(int cpu)
{
    last_worker = cpu;
}

void cpu_loop(int cpu)
{
    while (!stop_all) {
        ticks[cpu]++;
        cpu_work(cpu);
    }
}

/* Every CPU, once it knows its index. CPU 0 ends the VM; the others park. */
__attribute__((noreturn)) void cpu_main(int cpu)
{
    cpu_loop(cpu);
    __atomic_add_fetch(&cpus_done, 1, __ATOMIC_SEQ_CST);
    if (cpu != 0) {
        halt_forever();
    }
    while (cpus_done < cpu_count) {
    }
    serial_puts("smp guest done\n");
    debug_exit((uint8_t)cpu_count);
}

/* ELF64 direct boot: smp-entry64.S calls this on every vCPU with its index and the count. */
void smp_main(int cpu, int ncpus)
{
    if (cpu == 0) {
        cpu_count = ncpus < MAX_CPUS ? ncpus : MAX_CPUS;
        serial_puts("smp guest: ");
        serial_putu((unsigned long)ncpus);
        serial_puts(" cpus\n");
    }
    cpu_main(cpu);
}

/* Not called by the guest: tests move a parked AP here (`set var $rip = announce_halt`). It
 * says "parking" on the serial port, then halts for good (tests wait for that line). CPU 0
 * counts only after its banner, so waiting for its first tick keeps the two lines apart. */
__attribute__((noreturn)) void announce_halt(void)
{
    while (ticks[0] == 0) {
    }
    serial_puts("parking\n");
    halt_forever();
}

/* bzkernel.c: the kernel inside the bzkernel guest's bzImage. Like Linux's vmlinux it is linked
 * at __START_KERNEL (0xffffffff81000000) and loaded at LOAD_PHYSICAL_ADDR (16 MiB); the file
 * gdbvmm boots holds it only as the payload its decompressor (bzkernel-decompressor.S) writes
 * out at boot, so nothing of it exists in guest memory before that. A debugger's breakpoints on
 * it, set before boot, must still hit (gdb loads build/bzkernel.elf, as it loads vmlinux).
 * kmain calls late_work twice (rewriting late_work's code in between, as a kernel patches its
 * alternatives), then late_0 ... late_15 once each, and ends with debug-exit
 * 0x40 + late_calls + late_steps (status 0xA5 = 165 when all ran). */
#include "guest.h"
#include "serial.h"

volatile unsigned long late_calls = 0;
volatile unsigned long late_steps = 0;

/* The counter comes as an argument: the code has no RIP-relative reference, so a copy of it
 * elsewhere does the same. */
__attribute__((noinline)) void late_work(volatile unsigned long *counter, unsigned long n)
{
    *counter += n;
}

/* The same code again, right after late_work: kmain copies it over late_work between calls. */
__attribute__((noinline)) void late_work_copy(volatile unsigned long *counter, unsigned long n)
{
    *counter += n;
}

#define LATE(n) __attribute__((noinline)) void late_##n(void) { late_steps += 1; }
LATE(0) LATE(1) LATE(2) LATE(3) LATE(4) LATE(5) LATE(6) LATE(7)
LATE(8) LATE(9) LATE(10) LATE(11) LATE(12) LATE(13) LATE(14) LATE(15)

static void (*const late_steps_in_order[16])(void) = {
    late_0, late_1, late_2, late_3, late_4, late_5, late_6, late_7,
    late_8, late_9, late_10, late_11, late_12, late_13, late_14, late_15,
};

__attribute__((noreturn)) void kmain(void *boot_params)
{
    (void)boot_params;
    serial_puts("bzkernel: running at its link address\n");
    late_work(&late_calls, 1);
    {
        volatile unsigned char *to = (volatile unsigned char *)late_work;
        const volatile unsigned char *from = (const volatile unsigned char *)late_work_copy;
        for (long i = 0; i < (const char *)late_work_copy - (const char *)late_work; i++) to[i] = from[i];
    }
    late_work(&late_calls, 1);
    for (int i = 0; i < 16; i++) late_steps_in_order[i]();
    serial_puts("bzkernel: done\n");
    debug_exit((uint8_t)(0x40 + late_calls + late_steps));
}

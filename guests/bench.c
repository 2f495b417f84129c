/* bench.c: the guest scripts/bench drives, under gdbvmm and under QEMU (multiboot, so both
 * load the same image). kmain runs one workload after another and calls bench_done() after
 * each, where the bench's gdb script waits with a breakpoint. Nothing here prints: the bench
 * measures debugging operations, not the guest's console. The loops that gdb steps or stops
 * in wait on volatile limits that gdb lowers when it has what it needs, so no workload makes
 * the guest run long on a host where KVM emulates guest kernel code.
 *
 * The line numbers of SPIN_LINE, HOT_LINE and LONG_LINE matter: the bench sets breakpoints on them by
 * searching for their marker comments, so keep one statement per line. */
#include "guest.h"

#define BIG_SIZE (8u << 20)
/* The 8-byte value `find` looks for, once, near the end of big[]. */
#define NEEDLE 0x1122334455667788ull
#define NEEDLE_OFFSET (BIG_SIZE - 64)

uint8_t big[BIG_SIZE] __attribute__((aligned(4096)));
volatile uint64_t sink;
volatile int spin_limit = 1 << 30;
volatile int ticks;
volatile int hot_total;
volatile int often_total;

/* Reached after each workload: the bench keeps a breakpoint here. */
void __attribute__((noinline)) bench_done(void)
{
    sink++;
}

/* stepi runs here until gdb sets spin_limit = 0. */
void spin(void)
{
    for (int n = 0; n < spin_limit; n++) {
        sink += n; /* SPIN_LINE */
    }
}

/* 200 breakpoint hits: a breakpoint on tick, called in a loop. */
void __attribute__((noinline)) tick(void)
{
    ticks++;
}

void tick_loop(void)
{
    for (int n = 0; n < 200; n++) {
        tick();
    }
}

/* `break bench.c:HOT_LINE if i == 19999`: 19,999 false hits, then one true. */
void hot(void)
{
    int total = 0;
    for (int i = 0; i < 20000; i++) {
        total += i; /* HOT_LINE */
    }
    hot_total = total;
}

/* dprintf target, called 5,000 times. */
void __attribute__((noinline)) called_often(int x)
{
    often_total += x;
}

void often_loop(void)
{
    for (int k = 0; k < 5000; k++) {
        called_often(k);
    }
}

/* One source line of 640 `acc = acc * 3 + 1` statements: ~3,850 straight-line instructions
 * for `next` to step over (gcc -O0: six per statement; check with objdump -dl). */
#define X4(s) s s s s
#define X10(s) s s s s s s s s s s
#define X640(s) X4(X4(X4(X10(s))))
void long_line(void)
{
    uint64_t acc = 1;
    X640(acc = acc * 3 + 1;) /* LONG_LINE */
    sink = acc;
}

__attribute__((noreturn)) void kmain(const void *mbi)
{
    (void)mbi;
    *(volatile uint64_t *)&big[NEEDLE_OFFSET] = NEEDLE;
    bench_done();
    spin();
    bench_done();
    tick_loop();
    bench_done();
    hot();
    bench_done();
    often_loop();
    bench_done();
    long_line();
    bench_done();
    debug_exit(0);
}

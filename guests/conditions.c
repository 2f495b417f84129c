/* conditions.c: the guest of the target-side condition and dprintf tests (and of the
 * `break hot if i == 19999` measurement in scripts/bench-conditions). Each function is a place
 * to break with a condition on its arguments, a global, a register or a pointer; `report` is
 * the dprintf target. Runs to its end in well under a second of guest time and exits with
 * status 33 (debug_exit(0x10)). The tests depend on the names and values below. */
#include "guest.h"
#include "serial.h"

struct item {
    long key;
    const char *label;
};

struct item items[4] = { { 11, "alpha" }, { 22, "beta" }, { 33, "gamma" }, { 44, "delta" } };
volatile long total = 0;
long limit = 20000;

/* Called with i = 0 .. limit - 1; total holds the sum of the earlier i on entry. */
__attribute__((noinline)) long hot(long i)
{
    total += i;
    return total;
}

/* Called for every item in rounds 0 .. 3. */
__attribute__((noinline)) void visit(struct item *it, long round)
{
    total += it->key + round;
}

/* Called with x = 0 .. 9: x arrives in rdi. */
__attribute__((noinline)) long with_reg(long x)
{
    return x + 1;
}

/* The dprintf target, called 5 times. */
__attribute__((noinline)) long report(int a, long b, const char *s)
{
    return a + b + s[0];
}

__attribute__((noreturn)) void kmain(void)
{
    for (long i = 0; i < limit; i++) {
        hot(i);
    }
    for (long round = 0; round < 4; round++) {
        for (int k = 0; k < 4; k++) {
            visit(&items[k], round);
        }
    }
    for (long x = 0; x < 10; x++) {
        with_reg(x);
    }
    for (int i = 0; i < 5; i++) {
        report(i, 0x100 + i, items[i % 4].label);
    }
    serial_puts("conditions done\n");
    debug_exit(0x10);
}

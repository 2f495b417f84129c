/* watch.c: a guest for watchpoint tests. watch.ld links all of it, code and data, into one
 * 4 KiB page, so a VMM that traps the page of a watched variable also traps the code that
 * is running. touch_all accesses the five variables in a fixed order: write a, read b,
 * write c, read d, write e. kmain calls it twice and exits with 0x10 (status 33). */
#include "guest.h"
#include "serial.h"

/* Five adjacent ints in declaration order, 4 bytes apart (watched_a is 16-aligned). */
#define WATCHED __attribute__((section(".data.watched")))

WATCHED __attribute__((aligned(16))) volatile int watched_a = 0;
WATCHED volatile int watched_b = 2;
WATCHED volatile int watched_c = 0;
WATCHED volatile int watched_d = 4;
WATCHED volatile int watched_e = 0;
int reads_sum = 0;

void touch_all(void)
{
    int b;
    int d;
    watched_a = 1;
    b = watched_b;
    watched_c = 3;
    d = watched_d;
    watched_e = 5;
    reads_sum += b + d;
}

__attribute__((noreturn)) void kmain(void)
{
    serial_puts("watch guest\n");
    touch_all();
    touch_all();
    serial_puts("watch guest done\n");
    debug_exit(0x10);
}

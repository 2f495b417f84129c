/* ranges.c: source lines for gdb's range stepping (`vCont;r start,end`), one statement group
 * per line so that each `next` is one range. The end-to-end tests (RangeSteppingTests.swift)
 * and scripts/bench depend on the names below and on what each line does; keep both.
 *
 * Run without a debugger it computes its mix and ends through the debug-exit port with
 * status (5 << 1) | 1 = 11. gdb changes the flow by setting `spins` (a line that loops that
 * many times) and `fault_now` (a line that triple-faults). */
#include "guest.h"
#include "serial.h"

volatile uint64_t a = 1;
volatile uint64_t b = 2;
volatile int watched = 0;
volatile uint64_t spins = 0;
volatile uint64_t spin_count = 0;
volatile int fault_now = 0;

struct __attribute__((packed)) idt_descriptor {
    uint16_t limit;
    uintptr_t base;
};
struct idt_descriptor empty_idt = { 0, 0 };

/* 1024 copies of a four-instruction statement (at -O0): ~4,000 straight-line instructions. */
#define X4(s) s s s s
#define X1024(s) X4(X4(X4(X4(X4(s)))))
/* Each line below that does several things is one macro, so that the compiler gives the whole
 * line one line-table row and gdb steps it as one range. */
#define WATCH_LINE X1024(a += b;) watched = 1; X1024(a += b;)
/* Says "L" on the serial port (inline `out`, no call: the line stays one range) once it has
 * looped 50,000 times, so that a test presses Ctrl-C while the line runs. */
#define PUT(c) __asm__ volatile("outb %0, %1" : : "a"((uint8_t)(c)), "Nd"((uint16_t)COM1_PORT))
#define SPIN_LINE while (spins > 0) { spins--; spin_count++; if (spin_count == 50000) { PUT('L'); PUT('\n'); } }
#define FAULT_LINE if (fault_now) { __asm__ volatile("lidt %0" : : "m"(empty_idt)); *(volatile int *)0x8000000000000000ull = 1; }

uint64_t helper(uint64_t v)
{
    return v * 2 + 1;
}

__attribute__((noreturn)) void kmain(void)
{
    serial_puts("ranges guest\n");
    a = 1; b = 2;
    X1024(a += b;)
    a = helper(b);
    b = a + 1;
    WATCH_LINE;
    SPIN_LINE;
    FAULT_LINE;
    serial_puts("ranges guest: done\n");
    debug_exit((uint8_t)(watched + b - a + (a - b) + 4));
}

/* kernel.c: a test kernel to start from. It does its work, reports on the serial port, and
 * ends the VM through the debug-exit port with a status the CI job checks: v = 0x10 (exit
 * status 33) when every check passed, v = 0x11 (status 35) when one failed. The same code
 * builds as an ELF64 image (gdbvmm boots it directly) and as a multiboot image (gdbvmm, QEMU
 * -kernel, GRUB). Replace `run_tests` with your own code. */
#include <stdint.h>

#define SERIAL 0x3F8
#define DEBUG_EXIT 0xF4

static inline void outb(uint16_t port, uint8_t value) { __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static void putc_serial(char c)
{
    while (!(inb(SERIAL + 5) & 0x20))  /* line status: transmitter empty */
        ;
    outb(SERIAL, (uint8_t)c);
}

static void puts_serial(const char *s)
{
    while (*s)
        putc_serial(*s++);
}

static void put_decimal(unsigned long n)
{
    char digits[24];
    int i = 0;
    do {
        digits[i++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    while (i)
        putc_serial(digits[--i]);
}

/* Ends the VM: gdbvmm (and QEMU with -device isa-debug-exit) exits with (v << 1) | 1. */
static void __attribute__((noreturn)) exit_vm(uint8_t v)
{
    outb(DEBUG_EXIT, v);
    for (;;)
        __asm__ volatile("cli; hlt");
}

/* What the example test checks from gdb (a breakpoint on report, then `print result`). */
volatile unsigned long result;
unsigned long checks_failed;

unsigned long fibonacci(unsigned n)
{
    unsigned long a = 0, b = 1;
    for (unsigned i = 0; i < n; i++) {
        unsigned long next = a + b;
        a = b;
        b = next;
    }
    return a;
}

void report(const char *name, unsigned long value, unsigned long expected)
{
    puts_serial(name);
    puts_serial(value == expected ? ": ok (" : ": FAILED (");
    put_decimal(value);
    puts_serial(")\n");
    if (value != expected)
        checks_failed++;
}

static void run_tests(void)
{
    result = fibonacci(20);
    report("fibonacci(20)", result, 6765);
}

void kmain(void)
{
    puts_serial("template kernel\n");
    run_tests();
    exit_vm(checks_failed == 0 ? 0x10 : 0x11);
}

/* cpuid.c: prints the CPUID feature words a kernel decides on (leaf 1 ECX/EDX, leaf 7 EBX/ECX)
 * in hex, one per line, then exits with debug-exit 0x11 (status 35). Tests compare them with
 * the CPU model gdbvmm promises. */
#include "guest.h"
#include "serial.h"

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

static void put_hex(const char *name, uint32_t value)
{
    serial_puts(name);
    for (int shift = 28; shift >= 0; shift -= 4) {
        serial_putc("0123456789abcdef"[(value >> shift) & 0xF]);
    }
    serial_puts("\n");
}

__attribute__((noreturn)) void kmain(void)
{
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    put_hex("leaf1.ecx=", c);
    put_hex("leaf1.edx=", d);
    cpuid(7, 0, &a, &b, &c, &d);
    put_hex("leaf7.ebx=", b);
    put_hex("leaf7.ecx=", c);
    debug_exit(0x11);
}

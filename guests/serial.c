/* serial.c: polled output on the COM1 16550. */
#include "guest.h"
#include "serial.h"

void serial_putc(char c)
{
    while ((inb(COM1_LSR) & LSR_THR_EMPTY) == 0) {
    }
    outb(COM1_PORT, (uint8_t)c);
}

void serial_puts(const char *s)
{
    while (*s != '\0') {
        serial_putc(*s);
        s++;
    }
}

void serial_putu(unsigned long value)
{
    char digits[24];
    int n = 0;
    do {
        digits[n] = (char)('0' + value % 10);
        n++;
        value /= 10;
    } while (value != 0);
    while (n > 0) {
        n--;
        serial_putc(digits[n]);
    }
}

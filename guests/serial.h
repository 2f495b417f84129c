/* serial.h: polled output on the COM1 16550 (the demo guest has its own copy, in demo.c). */
#ifndef SERIAL_H
#define SERIAL_H

void serial_putc(char c);
void serial_puts(const char *s);
void serial_putu(unsigned long value);

#endif

/* echo.c: a guest that reads its console. It prints a prompt, reads one line from the COM1
 * 16550 (polling LSR bit 0, data ready), echoes it back, and exits with the line's length as
 * the debug-exit value (status (length << 1) | 1). */
#include "guest.h"
#include "serial.h"

#define LSR_DATA_READY 0x01

char line[128];

char serial_getc(void)
{
    while ((inb(COM1_LSR) & LSR_DATA_READY) == 0) {
    }
    return (char)inb(COM1_PORT);
}

__attribute__((noreturn)) void kmain(void)
{
    serial_puts("echo guest: type a line\n");
    unsigned int length = 0;
    for (;;) {
        char c = serial_getc();
        if (c == '\n' || c == '\r') {
            break;
        }
        if (length < sizeof(line) - 1) {
            line[length] = c;
            length++;
        }
    }
    line[length] = '\0';
    serial_puts("you typed: ");
    serial_puts(line);
    serial_puts("\n");
    debug_exit((uint8_t)length);
}

/* chatter.c: prints numbered lines on the serial console forever, as fast as it can: a guest
 * whose console output outruns any reader (tests point it at a pipe nobody reads). */
#include "guest.h"
#include "serial.h"

volatile unsigned long lines = 0;

__attribute__((noreturn)) void kmain(void)
{
    for (;;) {
        serial_puts("chatter line ");
        serial_putu(lines);
        serial_puts("\n");
        lines++;
    }
}

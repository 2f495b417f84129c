/* halt.c: prints "halting" and halts with interrupts off. gdbvmm ends a VM whose vCPUs are
 * all halted with IF = 0 with exit status 0. */
#include "guest.h"
#include "serial.h"

volatile int halting = 0;

__attribute__((noreturn)) void kmain(void)
{
    serial_puts("halting\n");
    halting = 1;
    halt_forever();
}

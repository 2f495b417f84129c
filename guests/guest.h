/* guest.h: port I/O and the few machine helpers every guest uses.
 * The devices are the ones gdbvmm (and QEMU with isa-debug-exit) provide: see README.md. */
#ifndef GUEST_H
#define GUEST_H

#include <stdint.h>

#define COM1_PORT        0x3F8   /* 16550 transmit holding register */
#define COM1_LSR         0x3FD   /* line status register */
#define LSR_THR_EMPTY    0x20    /* bit 5: ready for the next byte */
#define DEBUG_EXIT_PORT  0xF4    /* a write of v ends the VM with status (v << 1) | 1 */

static inline void outb(uint16_t port, uint8_t value)
{
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

/* Parks this CPU for good. With interrupts off, nothing wakes it but INIT. */
static inline __attribute__((noreturn)) void halt_forever(void)
{
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}

/* Ends the VM through the debug-exit port; halts if there is no such device. */
static inline __attribute__((noreturn)) void debug_exit(uint8_t value)
{
    outb(DEBUG_EXIT_PORT, value);
    halt_forever();
}

#endif

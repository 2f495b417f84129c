/* idt.h: a 64-bit IDT for the guests that take their own exceptions and interrupts. */
#ifndef GUEST_IDT_H
#define GUEST_IDT_H
#include "guest.h"

struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));

struct idt_pointer {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

#define IDT_INTERRUPT_GATE 0x8E   /* present, DPL 0, 64-bit interrupt gate (IF cleared) */
#define IDT_TRAP_GATE 0x8F        /* present, DPL 0, 64-bit trap gate */

/* Points `vector` at `handler` in code segment 0x08. */
static inline void idt_set_gate(struct idt_gate *idt, int vector, void (*handler)(void), uint8_t type)
{
    uint64_t address = (uint64_t)handler;
    idt[vector].offset_low = (uint16_t)address;
    idt[vector].selector = 0x08;
    idt[vector].ist = 0;
    idt[vector].type_attr = type;
    idt[vector].offset_mid = (uint16_t)(address >> 16);
    idt[vector].offset_high = (uint32_t)(address >> 32);
    idt[vector].reserved = 0;
}

/* Loads the IDT of `entries` gates. */
static inline void idt_load(struct idt_gate *idt, int entries)
{
    struct idt_pointer pointer = { (uint16_t)(entries * sizeof(struct idt_gate) - 1), (uint64_t)idt };
    __asm__ volatile("lidt %0" : : "m"(pointer));
}

#endif

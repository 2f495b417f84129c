/* bzimage.c: the bzimage guest checks the boot_params ("zero page") the Linux 64-bit boot
 * protocol hands it in RSI and reports it over the serial port: the boot loader fields, the
 * command line, the e820 map and the initrd. It exits with 0x10 (status 33) when the loader
 * fields are what a Linux boot loader must set, 0x11 (status 35) otherwise; with `acpi=poweroff`
 * or `acpi=reboot` on its command line it first powers off or resets the machine through the
 * ACPI tables gdbvmm gives Linux guests, as Linux would. */
#include <stddef.h>
#include "guest.h"
#include "serial.h"

/* The start of struct setup_header (Documentation/arch/x86/boot.rst), up to cmd_line_ptr. */
struct setup_header {
    uint8_t setup_sects;
    uint16_t root_flags;
    uint32_t syssize;
    uint16_t ram_size;
    uint16_t vid_mode;
    uint16_t root_dev;
    uint16_t boot_flag;
    uint16_t jump;
    uint32_t header;
    uint16_t version;
    uint32_t realmode_swtch;
    uint16_t start_sys_seg;
    uint16_t kernel_version;
    uint8_t type_of_loader;
    uint8_t loadflags;
    uint16_t setup_move_size;
    uint32_t code32_start;
    uint32_t ramdisk_image;
    uint32_t ramdisk_size;
    uint32_t bootsect_kludge;
    uint16_t heap_end_ptr;
    uint8_t ext_loader_ver;
    uint8_t ext_loader_type;
    uint32_t cmd_line_ptr;
} __attribute__((packed));

struct e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
} __attribute__((packed));

/* The parts of struct boot_params (Documentation/arch/x86/zero-page.rst) this guest reads. */
struct boot_params {
    uint8_t pad0[0x0C0];
    uint32_t ext_ramdisk_image;     /* 0x0C0 */
    uint32_t ext_ramdisk_size;      /* 0x0C4 */
    uint32_t ext_cmd_line_ptr;      /* 0x0C8 */
    uint8_t pad1[0x1E8 - 0x0CC];
    uint8_t e820_entries;           /* 0x1E8 */
    uint8_t pad2[0x1F1 - 0x1E9];
    struct setup_header hdr;        /* 0x1F1 */
    uint8_t pad3[0x2D0 - 0x1F1 - sizeof(struct setup_header)];
    struct e820_entry e820_table[128];  /* 0x2D0 */
} __attribute__((packed));

_Static_assert(offsetof(struct boot_params, hdr) == 0x1F1, "hdr");
_Static_assert(offsetof(struct boot_params, hdr.type_of_loader) == 0x210, "type_of_loader");
_Static_assert(offsetof(struct boot_params, hdr.cmd_line_ptr) == 0x228, "cmd_line_ptr");
_Static_assert(offsetof(struct boot_params, e820_table) == 0x2D0, "e820_table");

#define CAN_USE_HEAP 0x80

static void put_hex(uint8_t value)
{
    const char *digits = "0123456789abcdef";
    serial_puts("0x");
    serial_putc(digits[value >> 4]);
    serial_putc(digits[value & 0xF]);
}

static int contains(const char *haystack, const char *needle)
{
    for (; *haystack; haystack++) {
        const char *h = haystack, *n = needle;
        while (*n && *h == *n) { h++; n++; }
        if (!*n) return 1;
    }
    return 0;
}

static uint64_t le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* What Linux's ACPI code does to power off or reset a hardware-reduced platform, on the tables
 * at 0xE0000: RSDP -> XSDT -> FADT, then SLP_TYP(\_S5 = 5) | SLP_EN to SLEEP_CONTROL_REG, or
 * RESET_VALUE to RESET_REG (both system I/O here). Returns only if the tables are not there. */
static void acpi_end(int reboot)
{
    const uint8_t *rsdp = (const uint8_t *)0xE0000;
    if (le(rsdp, 4) != 0x20445352) { serial_puts("acpi: no RSDP\n"); return; }  /* "RSD " */
    const uint8_t *xsdt = (const uint8_t *)(uintptr_t)le(rsdp + 24, 8);
    uint32_t entries = ((uint32_t)le(xsdt + 4, 4) - 36) / 8;
    for (uint32_t i = 0; i < entries; i++) {
        const uint8_t *table = (const uint8_t *)(uintptr_t)le(xsdt + 36 + 8 * i, 8);
        if (le(table, 4) != 0x50434146) continue;  /* "FACP" */
        if (reboot) {
            serial_puts("acpi: reset register\n");
            outb((uint16_t)le(table + 116 + 4, 8), table[128]);
        } else {
            serial_puts("acpi: sleep control register, S5\n");
            outb((uint16_t)le(table + 256 + 4, 8), 0x80);             /* clear WAK_STS */
            outb((uint16_t)le(table + 244 + 4, 8), 5 << 2 | 0x20);    /* SLP_TYP 5, SLP_EN */
        }
    }
    serial_puts("acpi: still running\n");
}

__attribute__((noreturn)) void bzimage_main(const struct boot_params *params)
{
    uint64_t cmdline = params->hdr.cmd_line_ptr | (uint64_t)params->ext_cmd_line_ptr << 32;
    uint64_t initrd = params->hdr.ramdisk_image | (uint64_t)params->ext_ramdisk_image << 32;
    uint64_t initrd_size = params->hdr.ramdisk_size | (uint64_t)params->ext_ramdisk_size << 32;
    int loader_ok = params->hdr.type_of_loader == 0xFF && (params->hdr.loadflags & CAN_USE_HEAP) != 0
        && cmdline != 0;

    serial_puts("bzimage guest: loader ");
    put_hex(params->hdr.type_of_loader);
    serial_puts(", loadflags ");
    put_hex(params->hdr.loadflags);
    serial_puts("\ncmdline: ");
    if (cmdline != 0) {
        serial_puts((const char *)(uintptr_t)cmdline);
    }
    serial_puts("\ne820 entries: ");
    serial_putu(params->e820_entries);
    serial_puts("\ninitrd: ");
    if (initrd_size == 0) {
        serial_puts("none\n");
    } else {
        const uint8_t *bytes = (const uint8_t *)(uintptr_t)initrd;
        serial_putu(initrd_size);
        serial_puts(" bytes, first ");
        put_hex(bytes[0]);
        serial_puts(", last ");
        put_hex(bytes[initrd_size - 1]);
        serial_puts("\n");
    }
    if (cmdline != 0 && contains((const char *)(uintptr_t)cmdline, "acpi=poweroff")) acpi_end(0);
    if (cmdline != 0 && contains((const char *)(uintptr_t)cmdline, "acpi=reboot")) acpi_end(1);
    debug_exit(loader_ok ? 0x10 : 0x11);
}

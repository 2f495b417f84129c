/* pvh.c: the pvh guest checks the start_info structure the PVH loader passes in EBX,
 * prints the command line from it and exits with 0x10 (status 33), or 0x11 (status 35) if
 * the magic number is wrong. */
#include "guest.h"
#include "serial.h"

#define HVM_START_MAGIC 0x336ec578

/* Xen's struct hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h), version 1. */
struct hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;   /* NUL-terminated string, 0 if none */
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
};

__attribute__((noreturn)) void pvh_main(const struct hvm_start_info *start_info)
{
    if (start_info->magic != HVM_START_MAGIC) {
        serial_puts("pvh guest: bad start_info magic\n");
        debug_exit(0x11);
    }
    serial_puts("pvh guest: start_info magic ok, cmdline: ");
    if (start_info->cmdline_paddr != 0) {
        serial_puts((const char *)(uintptr_t)start_info->cmdline_paddr);
    }
    serial_puts("\n");
    debug_exit(0x10);
}

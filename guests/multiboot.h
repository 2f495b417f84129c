/* multiboot.h: the parts of the Multiboot v1 specification the guests use.
 * Included from C and from the assembly entry stubs. */
#ifndef MULTIBOOT_H
#define MULTIBOOT_H

#define MULTIBOOT_HEADER_MAGIC     0x1BADB002  /* in the image's header */
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002  /* in EAX at entry */

#define MULTIBOOT_PAGE_ALIGN  (1 << 0)   /* modules page aligned */
#define MULTIBOOT_MEMORY_INFO (1 << 1)   /* ask for mem_lower/mem_upper and the memory map */
#define MULTIBOOT_AOUT_KLUDGE (1 << 16)  /* the load addresses are in the header (needed for ELF64) */

#define MULTIBOOT_INFO_CMDLINE (1 << 2)  /* multiboot_info.cmdline is valid */

#ifndef __ASSEMBLER__
#include <stdint.h>

/* The information structure EBX points to at entry (first fields only). */
struct multiboot_info {
    uint32_t flags;
    uint32_t mem_lower;
    uint32_t mem_upper;
    uint32_t boot_device;
    uint32_t cmdline;      /* physical address of a NUL-terminated string */
    uint32_t mods_count;
    uint32_t mods_addr;
};
#endif

#endif

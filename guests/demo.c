/* demo.c: the example guest. The same file is built three ways (see README.md):
 * ELF64 direct boot, ELF64 multiboot (a.out kludge) and ELF32 multiboot.
 *
 * The gdb end-to-end tests depend on the names below and on one statement per line, so that
 * `next` and `step` stop where a reader expects. Keep both when editing.
 *
 * Run without a debugger it prints the banner (and the multiboot command line), computes
 * total = 33 and ends the VM through the debug-exit port with total - 17 = 0x10, which is exit
 * status (0x10 << 1) | 1 = 33. `set var total = 34` in gdb makes it 35. */
#include "guest.h"
#include "multiboot.h"

struct point {
    int x;
    int y;
    const char *name;
};

struct point origin = { 3, 4, "origin" };
const char *greeting = "hello from the guest";
volatile int spin_forever = 0;
volatile int counter = 0;
unsigned int greeting_checksum = 0;

#ifdef __x86_64__
/* Loaded into xmm0 so that `info registers xmm0` shows a known value. A plain movdqu, not
 * double arithmetic: KVM's instruction emulator (which runs CPL0 code on nested hosts)
 * handles SSE moves but not SSE arithmetic. */
uint32_t xmm_pattern[4] __attribute__((aligned(16))) = { 0x11111111, 0x22222222, 0x33333333, 0x44444444 };
#endif

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

int square(int x)
{
    return x * x;
}

int add(int a, int b)
{
    int sum = a + b;
    return sum;
}

int compute(int n)
{
    return add(square(n), n);
}
/* Returns at once unless gdb sets spin_forever = 1; then counts, printing "spinning" once. */
void spin(void)
{
    while (spin_forever) {
        counter++;
        if (counter == 1) serial_puts("spinning\n");
    }
}

unsigned int checksum(const char *s)
{
    unsigned int sum = 0;
    while (*s != '\0') {
        sum = sum * 31 + (unsigned char)*s;
        s++;
    }
    return sum;
}

void load_xmm0(void)
{
#ifdef __x86_64__
    __asm__ volatile("movdqu %0, %%xmm0" : : "m"(xmm_pattern));
#endif
}

void print_cmdline(const struct multiboot_info *mbi)
{
    if ((mbi->flags & MULTIBOOT_INFO_CMDLINE) == 0) {
        return;
    }
    serial_puts("cmdline: ");
    serial_puts((const char *)(uintptr_t)mbi->cmdline);
    serial_puts("\n");
}

__attribute__((noreturn)) void guest_exit(int code)
{
    debug_exit((uint8_t)code);
}

/* mbi is the multiboot information, or 0 for the ELF64 direct build. */
__attribute__((noreturn)) void kmain(const struct multiboot_info *mbi)
{
    serial_puts("gdbvmm demo guest\n");
    if (mbi != 0) {
        print_cmdline(mbi);
    }
    int result = compute(5);
    int total = add(result, origin.x);
    spin();
    load_xmm0();
    greeting_checksum = checksum(greeting);
    serial_puts("demo guest done\n");
    guest_exit(total - 17);
}

// A Linux /init for gdbvmm's kernel tests: prints one line on the console, then ends the VM
// through the debug-exit port 0xF4 with the code given as `gdbvmm_exit=N` on the kernel command
// line (the kernel hands unknown `key=value` words to init as environment variables), so
// gdbvmm's exit status is (N << 1) | 1. `gdbvmm_end=poweroff` or `=reboot` ends it through the
// reboot system call instead; `gdbvmm_end=echo` first reads a line from the console and exits
// with its length. Static, no libc: raw system calls only.

#define SYS_read 0
#define SYS_write 1
#define SYS_ioperm 173
#define SYS_reboot 169
#define SYS_exit 60

static long syscall3(long n, long a, long b, long c) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return ret;
}

static unsigned long length(const char *s) {
    unsigned long n = 0;
    while (s[n]) n++;
    return n;
}

static void say(const char *s) { syscall3(SYS_write, 1, (long)s, (long)length(s)); }

static int starts_with(const char *s, const char *prefix) {
    while (*prefix) if (*s++ != *prefix++) return 0;
    return 1;
}

void start_c(long *stack) {
    long argc = stack[0];
    char **envp = (char **)(stack + 1 + argc + 1);
    unsigned code = 0;
    const char *action = "exit";
    for (char **e = envp; *e; e++) {
        if (starts_with(*e, "gdbvmm_exit=")) {
            code = 0;
            for (const char *p = *e + 12; *p >= '0' && *p <= '9'; p++) code = code * 10 + (unsigned)(*p - '0');
        }
        if (starts_with(*e, "gdbvmm_end=")) action = *e + 11;
    }
    say("gdbvmm-init: hello from /init\n");
    if (starts_with(action, "echo")) {
        // One line from the console (the serial port, interrupt-driven), echoed; its length
        // becomes the exit code.
        static char line[200];
        unsigned long n = 0;
        say("gdbvmm-init: type a line\n");
        while (n < sizeof line - 1) {
            long got = syscall3(SYS_read, 0, (long)(line + n), 1);
            if (got <= 0 || line[n] == '\n' || line[n] == '\r') break;
            n++;
        }
        line[n] = 0;
        say("gdbvmm-init: you typed: ");
        say(line);
        say("\n");
        code = (unsigned)n;
    }
    if (starts_with(action, "poweroff")) {
        say("gdbvmm-init: powering off\n");
        syscall3(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc);  // LINUX_REBOOT_CMD_POWER_OFF
    } else if (starts_with(action, "reboot")) {
        say("gdbvmm-init: rebooting\n");
        syscall3(SYS_reboot, 0xfee1dead, 672274793, 0x01234567);  // LINUX_REBOOT_CMD_RESTART
    } else if (syscall3(SYS_ioperm, 0xF4, 1, 1) == 0) {
        __asm__ volatile("outb %b0, $0xf4" : : "a"(code));
    }
    say("gdbvmm-init: could not end the VM\n");
    for (;;) syscall3(SYS_exit, 1, 0, 0);
}

__asm__(".globl _start\n_start:\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall start_c\n\thlt\n");

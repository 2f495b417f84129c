/* entry.S: the entry of both builds.
 * ELF64 (gdbvmm's direct boot): entered in 64-bit mode with paging on (identity map), RSP on a
 *   stack gdbvmm provides, RDI = vCPU index: vCPU 0 runs kmain, any other parks.
 * Multiboot (32-bit protected mode, paging off, no stack): the header below makes the image
 *   bootable; the stub takes its own stack, zeroes .bss and calls kmain. */
    .cfi_sections .debug_frame

#ifdef __x86_64__
    .section .text.entry, "ax"
    .globl _start
    .type _start, @function
_start:
    .cfi_startproc
    .cfi_undefined rip              /* the outermost frame, for gdb's backtrace */
    xor %ebp, %ebp
    test %rdi, %rdi
    jnz 1f
    call kmain
1:  cli
    hlt
    jmp 1b
    .cfi_endproc
    .size _start, . - _start
#else
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x3                /* page-aligned modules, memory information */
    .section .multiboot, "a"
    .p2align 2
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .text.entry, "ax"
    .globl _start
    .type _start, @function
_start:
    .cfi_startproc
    .cfi_undefined eip
    cli
    cld
    mov $stack_top, %esp
    xor %eax, %eax
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    rep stosb
    xor %ebp, %ebp
    call kmain
1:  cli
    hlt
    jmp 1b
    .cfi_endproc
    .size _start, . - _start

    .section .bss.stack, "aw", @nobits
    .p2align 4
    .skip 16384
stack_top:
#endif
    .section .note.GNU-stack, "", @progbits

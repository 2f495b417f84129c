/* ap-trampoline.S: how the application processors of smp-multiboot get from the start-up IPI
 * to C. smp-bringup.c copies ap_trampoline_start..ap_trampoline_end to AP_TRAMPOLINE_ADDR
 * (0x8000) and sends SIPI vector 0x08, so each AP starts there in real mode with CS = 0x0800.
 * The trampoline loads the kernel's GDT, sets CR0.PE and far-jumps straight into ap_entry32,
 * which lives in the kernel image. ap_entry32 takes the next CPU index from an atomic
 * counter, switches to that CPU's stack and calls ap_main(index). */
#define MAX_CPUS   64
#define STACK_SIZE 4096

    .cfi_sections .debug_frame      /* CFI for gdb, not .eh_frame */

    .section .rodata.trampoline, "a"
    .code16
    .globl ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    lgdtl ap_gdtr - ap_trampoline_start
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x08, $ap_entry32
    .p2align 2
ap_gdtr:
    .word 23                        /* the three descriptors of gdt32 */
    .long gdt32
ap_trampoline_end:

    .section .text
    .code32
    .globl ap_entry32
    .type ap_entry32, @function
ap_entry32:
    .cfi_startproc
    .cfi_undefined eip              /* the outermost frame, for gdb's backtrace */
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %fs
    mov %eax, %gs
    mov %eax, %ss
    mov $1, %eax
    lock xadd %eax, next_cpu_index  /* eax = this CPU's index (the BSP is 0) */
    cmp $MAX_CPUS, %eax
    jae 1f
    mov %eax, %ecx
    inc %ecx
    shl $12, %ecx                   /* (index + 1) * STACK_SIZE */
    lea ap_stacks(%ecx), %esp
    sub $12, %esp                   /* 16-aligned at the call */
    push %eax
    xor %ebp, %ebp
    call ap_main
1:
    cli
    hlt
    jmp 1b
    .cfi_endproc
    .size ap_entry32, . - ap_entry32

    .section .stack, "aw", @nobits
    .p2align 12
ap_stacks:
    .skip MAX_CPUS * STACK_SIZE

    .section .note.GNU-stack, "", @progbits

/* smp-entry64.S: entry of the ELF64 direct-boot smp guest. Every vCPU starts here with
 * RDI = vCPU index and RSI = vCPU count; each switches to its own stack and runs
 * smp_main(index, count). vCPUs beyond MAX_CPUS park. */
#define MAX_CPUS   64
#define STACK_SIZE 4096

    .cfi_sections .debug_frame      /* CFI for gdb, not .eh_frame */

    .section .text.entry, "ax"
    .code64
    .globl _start
    .type _start, @function
_start:
    .cfi_startproc
    .cfi_undefined rip              /* the outermost frame, for gdb's backtrace */
    xor %ebp, %ebp
    cmp $MAX_CPUS, %rdi
    jae park
    mov %rdi, %rax
    inc %rax
    shl $12, %rax                   /* (index + 1) * STACK_SIZE */
    lea cpu_stacks(%rax), %rsp
    call smp_main
park:
    cli
    hlt
    jmp park
    .cfi_endproc
    .size _start, . - _start

    .section .stack, "aw", @nobits
    .p2align 12
cpu_stacks:
    .skip MAX_CPUS * STACK_SIZE

    .section .note.GNU-stack, "", @progbits

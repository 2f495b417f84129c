/* bzkernel-decompressor.S: the protected-mode part of the bzkernel guest's bzImage, standing in
 * for Linux's compressed kernel (arch/x86/boot/compressed/head_64.S). Entered at load + 0x200
 * in long mode with RSI = boot_params, it does what Linux's decompressor does around
 * extract_kernel: moves itself out of the way (RELOCATION above its load address, which is
 * also the output), writes the kernel out at the output (a copy stands in for decompression),
 * and jumps there with RSI = boot_params. */
#define RELOCATION 0x200000

    .section .text.head, "ax"
    .code64
    .globl startup_32
startup_32:                         /* offset 0: the 32-bit entry, unused by the 64-bit boot */
    cli
    hlt
    jmp startup_32

    .org 0x200
    .globl startup_64
startup_64:
    cli
    cld
    mov %rsi, %r15
    lea startup_32(%rip), %rbp      /* the load address, and the output */
    lea RELOCATION(%rbp), %rdi
    mov %rbp, %rsi
    mov $image_size, %ecx
    rep movsb
    lea (relocated - startup_32 + RELOCATION)(%rbp), %rax
    jmp *%rax
relocated:
    lea payload(%rip), %rsi
    mov %rbp, %rdi
    mov $payload_size, %ecx
    rep movsb
    mov %r15, %rsi
    jmp *%rbp

    .section .payload, "a"
    .p2align 4
payload:
    .incbin "bzkernel.bin"
payload_end:
    .set payload_size, payload_end - payload

    .section .note.GNU-stack, "", @progbits

/* bzkernel-entry.S: startup_64 of the bzkernel guest's kernel, the first byte of its image.
 * As Linux's is, it is entered at its physical address (16 MiB) by the decompressor's jump,
 * identity-mapped, with RSI = boot_params. It zeroes its bss, maps __START_KERNEL_map
 * (0xffffffff80000000: PML4 entry 511, PDPT entry 510) onto physical 0 with 2 MiB pages beside
 * the boot loader's identity map, and continues at its link address. Until then only
 * RIP-relative addresses are used: nothing is at the link address yet. */
    .cfi_sections .debug_frame

    .section .text.head, "ax"
    .code64
    .globl startup_64
    .type startup_64, @function
startup_64:
    .cfi_startproc
    .cfi_undefined rip
    cli
    cld
    mov %rsi, %r15
    lea __bss_start(%rip), %rdi
    lea __bss_end(%rip), %rcx
    sub %rdi, %rcx
    shr $3, %rcx
    xor %eax, %eax
    rep stosq
    lea kernel_pd(%rip), %rdi
    mov $0x83, %eax                 /* present, writable, 2 MiB page */
    mov $32, %ecx                   /* 64 MiB */
1:  mov %rax, (%rdi)
    add $0x200000, %rax
    add $8, %rdi
    dec %ecx
    jnz 1b
    lea kernel_pd(%rip), %rax
    or $3, %rax
    lea kernel_pdpt(%rip), %rdi
    mov %rax, 510*8(%rdi)
    or $3, %rdi
    mov %cr3, %rax
    and $~0xfff, %rax
    mov %rdi, 511*8(%rax)
    mov %rax, %cr3
    movabs $high, %rax
    jmp *%rax
high:
    movabs $boot_stack_top, %rsp
    xor %ebp, %ebp
    mov %r15, %rdi
    call kmain
2:
    cli
    hlt
    jmp 2b
    .cfi_endproc
    .size startup_64, . - startup_64

    .section .bss.pagetables, "aw", @nobits
    .p2align 12
kernel_pdpt:
    .skip 4096
kernel_pd:
    .skip 4096

    .section .stack, "aw", @nobits
    .p2align 4
    .skip 16384
boot_stack_top:

    .section .note.GNU-stack, "", @progbits

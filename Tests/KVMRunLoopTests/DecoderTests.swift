import Testing
@testable import KVMRunLoop

// Encodings come from GNU as (`as --64`, `as --32`, `.code16`) and objdump; expected addresses
// are computed by hand from the register sets below.

private func hex(_ text: String) -> [UInt8] {
    text.split(separator: " ").map { UInt8($0, radix: 16)! }
}

private func r(_ address: UInt64, _ size: Int) -> MemoryAccess {
    MemoryAccess(address: address, size: size, isRead: true, isWrite: false)
}

private func w(_ address: UInt64, _ size: Int) -> MemoryAccess {
    MemoryAccess(address: address, size: size, isRead: false, isWrite: true)
}

private func rw(_ address: UInt64, _ size: Int) -> MemoryAccess {
    MemoryAccess(address: address, size: size, isRead: true, isWrite: true)
}

/// rax rcx rdx rbx rsp rbp rsi rdi r8..r15; es cs ss ds bases are ignored in 64-bit mode.
private let regs64 = DecodeRegisters(
    gpr: [0x1000, 0x10, 0x3000, 0x4000, 0x7FF0, 0x8000, 0x9000, 0xA000,
          0xB000, 0xC000, 0xD000, 0xE000, 0x12000, 0x13000, 0x14000, 0x15000],
    rip: 0x40_0000,
    segmentBases: [0x11_0000, 0x22_0000, 0x33_0000, 0x44_0000, 0x7000_0000, 0x7100_0000])

private let regs32 = DecodeRegisters(
    gpr: [0x1000, 0x10, 0x3000, 0x4000, 0x7FF0, 0x8000, 0x9000, 0xA000] + Array(repeating: 0, count: 8),
    rip: 0x1000,
    segmentBases: [0x10000, 0, 0x20000, 0x30000, 0x40000, 0x50000])

private let regs16 = DecodeRegisters(
    gpr: [0x1000, 3, 0, 0x100, 0xFFF0, 0x200, 0x20, 0x30] + Array(repeating: 0, count: 8),
    rip: 0x7C00,
    segmentBases: [0x10000, 0xF0000, 0x20000, 0x30000, 0x40000, 0x50000])

private func with(_ base: DecodeRegisters, _ changes: [Int: UInt64] = [:], df: Bool = false, rip: UInt64? = nil) -> DecodeRegisters {
    var registers = base
    for (index, value) in changes { registers.gpr[index] = value }
    registers.rflagsDF = df
    if let rip { registers.rip = rip }
    return registers
}

private func check(_ bytes: String, _ mode: DecodeMode = .long64, _ registers: DecodeRegisters? = nil,
                   length: Int, _ accesses: MemoryAccess..., sourceLocation: SourceLocation = #_sourceLocation) {
    let registers = registers ?? (mode == .long64 ? regs64 : mode == .protected32 ? regs32 : regs16)
    let decoded = InstructionDecoder.decode(hex(bytes), mode: mode, registers: registers)
    #expect(decoded == DecodedInstruction(length: length, accesses: accesses), "\(bytes)", sourceLocation: sourceLocation)
}

private func refuse(_ bytes: String, _ mode: DecodeMode = .long64, sourceLocation: SourceLocation = #_sourceLocation) {
    let registers = mode == .long64 ? regs64 : mode == .protected32 ? regs32 : regs16
    #expect(InstructionDecoder.decode(hex(bytes), mode: mode, registers: registers) == nil, "\(bytes)",
            sourceLocation: sourceLocation)
}

@Suite struct DecoderTests {
    @Test func longModeAddressing() {
        check("8b 05 34 12 00 00", length: 6, r(0x40_123A, 4))  // mov 0x1234(%rip),%eax
        check("89 05 34 12 00 00", length: 6, w(0x40_123A, 4))  // mov %eax,0x1234(%rip)
        // movq $5,-0x10(%rip): relative to the end, after the immediate
        check("48 c7 05 f0 ff ff ff 05 00 00 00", length: 11, w(0x3F_FFFB, 8))
        check("8b 45 fc", length: 3, r(0x7FFC, 4))  // mov -0x4(%rbp),%eax (SS base ignored)
        check("89 45 fc", length: 3, w(0x7FFC, 4))
        check("8b 54 88 08", length: 4, r(0x1048, 4))  // mov 0x8(%rax,%rcx,4),%edx
        check("48 89 54 24 10", length: 5, w(0x8000, 8))  // mov %rdx,0x10(%rsp)
        check("4c 8b 8c dc 00 01 00 00", length: 8, r(0x280F0, 8))  // mov 0x100(%rsp,%rbx,8),%r9
        check("41 8b 04 24", length: 4, r(0x12000, 4))  // mov (%r12),%eax
        check("41 8b 45 00", length: 4, r(0x13000, 4))  // mov 0x0(%r13),%eax
        check("66 43 8b 44 78 20", length: 6, r(0x35020, 2))  // mov 0x20(%r8,%r15,2),%ax
        check("8b 04 25 78 56 34 12", length: 7, r(0x1234_5678, 4))  // mov 0x12345678,%eax (absolute)
        check("48 8b 04 cd f8 ff ff ff", length: 8, r(0x78, 8))  // mov -0x8(,%rcx,8),%rax
        check("26 8b 07", length: 3, r(0xA000, 4))  // es override: no effect in 64-bit mode
        check("64 48 8b 04 25 28 00 00 00", length: 9, r(0x7000_0028, 8))  // mov %fs:0x28,%rax
        check("65 48 8b 57 08", length: 5, r(0x7100_A008, 8))  // mov %gs:0x8(%rdi),%rdx
        check("64 48 8b 08", length: 4, r(0x7000_1000, 8))  // mov %fs:(%rax),%rcx
        check("64 48 8b 05 10 00 00 00", length: 8, r(0x7040_0018, 8))  // mov %fs:0x10(%rip),%rax
    }

    @Test func sibIndexAndREX() {
        // 42 8b 04 25 ...: REX.X makes index 100 mean r12, so this is disp32 + r12*1.
        check("42 8b 04 25 00 10 00 00", length: 8, r(0x13000, 4))
        check("4a 8b 04 e5 00 00 00 00", length: 8, r(0x90000, 8))  // mov 0x0(,%r12,8),%rax
        // A REX followed by a legacy prefix is ignored: this is a 16-bit load.
        check("48 66 8b 07", length: 4, r(0xA000, 2))
        check("66 48 8b 07", length: 4, r(0xA000, 8))  // REX.W beats 66
    }

    @Test func addressSizeOverride() {
        check("67 8b 08", length: 3, r(0x1000, 4))  // mov (%eax),%ecx
        // mov -0x8(%ebp,%esi,2),%ecx with ebp = 4: wraps to the top of the 32-bit space.
        check("67 8b 4c 75 f8", .long64, with(regs64, [5: 0x1_0000_0004, 6: 0]), length: 5, r(0xFFFF_FFFC, 4))
        // mov 0x10(%eip),%eax near the top of 4 GiB: eip-relative wraps too.
        check("67 8b 05 10 00 00 00", .long64, with(regs64, rip: 0xFFFF_FFF0), length: 7, r(7, 4))
        check("67 64 8b 00", length: 4, r(0x7000_1000, 4))  // mov %fs:(%eax),%eax
    }

    @Test func stack() {
        check("55", length: 1, w(0x7FE8, 8))  // push %rbp
        check("41 54", length: 2, w(0x7FE8, 8))  // push %r12
        check("66 50", length: 2, w(0x7FEE, 2))  // push %ax
        check("5b", length: 1, r(0x7FF0, 8))  // pop %rbx
        check("41 5f", length: 2, r(0x7FF0, 8))  // pop %r15
        check("6a 12", length: 2, w(0x7FE8, 8))  // push $0x12
        check("68 78 56 34 12", length: 5, w(0x7FE8, 8))  // push $0x12345678
        check("ff 70 10", length: 3, r(0x1010, 8), w(0x7FE8, 8))  // push 0x10(%rax)
        // pop 0x8(%rsp): the destination address uses the incremented rsp
        check("8f 44 24 08", length: 4, r(0x7FF0, 8), w(0x8000, 8))
        check("9c", length: 1, w(0x7FE8, 8))  // pushf
        check("9d", length: 1, r(0x7FF0, 8))  // popf
        check("c9", length: 1, r(0x8000, 8))  // leave
        check("c8 20 00 00", length: 4, w(0x7FE8, 8))  // enter $0x20,$0
        // enter $0x20,$3: pushes rbp, two frame pointers and the new frame; reads the old ones
        check("c8 20 00 03", length: 4, w(0x7FD0, 32), r(0x7FF0, 16))
        check("0f a0", length: 2, w(0x7FE8, 8))  // push %fs
        check("0f a9", length: 2, r(0x7FF0, 8))  // pop %gs
    }

    @Test func controlFlow() {
        check("e8 00 01 00 00", length: 5, w(0x7FE8, 8))  // call rel32
        check("ff d0", length: 2, w(0x7FE8, 8))  // call *%rax
        check("ff 53 18", length: 3, r(0x4018, 8), w(0x7FE8, 8))  // call *0x18(%rbx)
        check("ff 15 00 10 00 00", length: 6, r(0x40_1006, 8), w(0x7FE8, 8))  // call *0x1000(%rip)
        check("ff 63 18", length: 3, r(0x4018, 8))  // jmp *0x18(%rbx)
        check("ff e0", length: 2)  // jmp *%rax
        check("c3", length: 1, r(0x7FF0, 8))  // ret
        check("c2 10 00", length: 3, r(0x7FF0, 8))  // ret $0x10
        check("48 cb", length: 2, r(0x7FF0, 16))  // lretq
        check("48 cf", length: 2, r(0x7FF0, 40))  // iretq
        check("75 0e", length: 2)
        check("0f 85 fa 0f 00 00", length: 6)
        check("e9 fb 0f 00 00", length: 5)
        check("eb 00", length: 2)
        check("e2 fe", length: 2)  // loop
    }

    @Test func strings() {
        let regs = regs64  // rcx = 0x10, rsi = 0x9000, rdi = 0xA000
        check("f3 a4", length: 2, r(0x9000, 16), w(0xA000, 16))  // rep movsb
        check("f3 a4", .long64, with(regs, df: true), length: 2, r(0x8FF1, 16), w(0x9FF1, 16))
        check("f3 a4", .long64, with(regs, [1: 0]), length: 2)  // rcx = 0: nothing
        check("48 a5", length: 2, r(0x9000, 8), w(0xA000, 8))  // movsq
        check("48 a5", .long64, with(regs, df: true), length: 2, r(0x9000, 8), w(0xA000, 8))
        check("f3 48 ab", length: 3, w(0xA000, 0x80))  // rep stos %rax
        check("f3 48 ab", .long64, with(regs, df: true), length: 3, w(0x9F88, 0x80))
        check("f3 a6", length: 2, r(0x9000, 16), r(0xA000, 16))  // repz cmpsb (upper bound)
        check("ae", length: 1, r(0xA000, 1))  // scasb
        check("ad", length: 1, r(0x9000, 4))  // lods
        check("64 a4", length: 2, r(0x7000_9000, 1), w(0xA000, 1))  // movsb %fs:(%rsi)
        // 67: esi/edi/ecx; rcx's upper half does not count
        check("f3 67 a4", .long64, with(regs, [1: 0x1_0000_0002, 6: 0x1_0000_9000]), length: 3,
              r(0x9000, 2), w(0xA000, 2))
        check("f3 6c", length: 2, w(0xA000, 16))  // rep insb
        check("6f", length: 1, r(0x9000, 4))  // outsl
    }

    @Test func arithmeticSemantics() {
        check("39 47 04", length: 3, r(0xA004, 4))  // cmp %eax,0x4(%rdi)
        check("3b 47 04", length: 3, r(0xA004, 4))  // cmp 0x4(%rdi),%eax
        check("83 7f 04 07", length: 4, r(0xA004, 4))  // cmpl $7
        check("80 3f 07", length: 3, r(0xA000, 1))  // cmpb $7
        check("01 47 04", length: 3, rw(0xA004, 4))  // add %eax,0x4(%rdi)
        check("03 47 04", length: 3, r(0xA004, 4))  // add 0x4(%rdi),%eax
        check("48 81 47 08 00 10 00 00", length: 8, rw(0xA008, 8))  // addq $0x1000
        check("66 81 07 34 12", length: 5, rw(0xA000, 2))  // addw $0x1234
        check("83 2f 01", length: 3, rw(0xA000, 4))  // subl $1
        check("30 07", length: 2, rw(0xA000, 1))  // xor %al,(%rdi)
        check("05 78 56 34 12", length: 5)  // add $imm32,%eax
        check("66 25 ff 00", length: 4)  // and $0xff,%ax
        check("85 07", length: 2, r(0xA000, 4))  // test
        check("f6 07 01", length: 3, r(0xA000, 1))  // testb $1
        check("66 f7 07 00 01", length: 5, r(0xA000, 2))  // testw $0x100
        check("f7 07 00 00 01 00", length: 6, r(0xA000, 4))  // testl $0x10000
        check("f7 17", length: 2, rw(0xA000, 4))  // notl
        check("48 f7 1f", length: 3, rw(0xA000, 8))  // negq
        check("f7 27", length: 2, r(0xA000, 4))  // mull
        check("48 f7 7f 08", length: 4, r(0xA008, 8))  // idivq 0x8(%rdi)
        check("c1 27 03", length: 3, rw(0xA000, 4))  // shll $3
        check("48 d1 3f", length: 3, rw(0xA000, 8))  // sarq
        check("d3 2f", length: 2, rw(0xA000, 4))  // shrl %cl
        check("6b 06 03", length: 3, r(0x9000, 4))  // imul $3,(%rsi),%eax
        check("69 06 2c 01 00 00", length: 6, r(0x9000, 4))  // imul $300,(%rsi),%eax
        check("48 0f af 06", length: 4, r(0x9000, 8))  // imul (%rsi),%rax
        check("f0 ff 07", length: 3, rw(0xA000, 4))  // lock incl
        check("fe 0f", length: 2, rw(0xA000, 1))  // decb
        check("48 8d 54 88 08", length: 5)  // lea: no access
        check("48 8d 35 10 00 00 00", length: 7)  // lea 0x10(%rip),%rsi
        check("87 07", length: 2, rw(0xA000, 4))  // xchg %eax,(%rdi)
        check("48 93", length: 2)  // xchg %rax,%rbx
        check("01 c2", length: 2)  // add %eax,%edx
    }

    @Test func moves() {
        check("c6 07 01", length: 3, w(0xA000, 1))
        check("66 c7 07 34 12", length: 5, w(0xA000, 2))
        check("c7 47 08 78 56 34 12", length: 7, w(0xA008, 4))
        check("48 c7 47 08 ff ff ff ff", length: 8, w(0xA008, 8))
        check("48 b8 88 77 66 55 44 33 22 11", length: 10)  // movabs $imm64,%rax
        check("66 b8 34 12", length: 4)
        check("b0 01", length: 2)
        check("a0 88 77 66 55 44 33 22 11", length: 9, r(0x1122_3344_5566_7788, 1))  // movabs moffs,%al
        check("a1 88 77 66 55 44 33 22 11", length: 9, r(0x1122_3344_5566_7788, 4))
        check("48 a3 88 77 66 55 44 33 22 11", length: 10, w(0x1122_3344_5566_7788, 8))
        check("67 a1 44 33 22 11", length: 6, r(0x1122_3344, 4))  // 32-bit moffs
        check("65 48 a1 10 00 00 00 00 00 00 00", length: 11, r(0x7100_0010, 8))
        check("0f b6 06", length: 3, r(0x9000, 1))  // movzbl
        check("0f b7 46 02", length: 4, r(0x9002, 2))  // movzwl
        check("48 0f be 47 ff", length: 5, r(0x9FFF, 1))  // movsbq
        check("0f bf 0f", length: 3, r(0xA000, 2))  // movswl
        check("48 63 47 04", length: 4, r(0xA004, 4))  // movslq
        check("8c 1f", length: 2, w(0xA000, 2))  // mov %ds,(%rdi)
        check("8e 1f", length: 2, r(0xA000, 2))  // mov (%rdi),%ds
        check("0f 94 07", length: 3, w(0xA000, 1))  // sete (%rdi)
        check("0f 95 c0", length: 3)  // setne %al
        check("0f 45 06", length: 3, r(0x9000, 4))  // cmovne
        // xlat: rbx + al
        check("d7", .long64, with(regs64, [0: 0x1234_5680]), length: 1, r(0x4080, 1))
    }

    @Test func atomics() {
        check("f0 0f b1 0f", length: 4, rw(0xA000, 4))  // lock cmpxchg %ecx,(%rdi)
        check("f0 0f b0 0f", length: 4, rw(0xA000, 1))
        check("f0 0f c7 0f", length: 4, rw(0xA000, 8))  // lock cmpxchg8b
        check("f0 48 0f c7 0f", length: 5, rw(0xA000, 16))  // lock cmpxchg16b
        check("f0 0f c1 07", length: 4, rw(0xA000, 4))  // lock xadd
    }

    @Test func bitTests() {
        // bt %eax,(%rdi) with eax = 0x1000: bit 4096 lies 512 bytes further
        check("0f a3 07", length: 3, r(0xA200, 4))
        check("0f a3 07", .long64, with(regs64, [0: 0xFFFF_FFFF]), length: 3, r(0x9FFC, 4))  // bit -1
        check("66 0f a3 07", length: 4, r(0xA200, 2))  // 16-bit: 4096 / 16 * 2
        check("48 0f ab 0f", length: 4, rw(0xA000, 8))  // bts %rcx,(%rdi), bit 16
        check("0f ba 27 03", length: 4, r(0xA000, 4))  // btl $3
        check("48 0f ba 77 08 3f", length: 6, rw(0xA008, 8))  // btrq $63,0x8(%rdi)
        check("0f a4 07 04", length: 4, rw(0xA000, 4))  // shld $4
        check("0f ad 07", length: 3, rw(0xA000, 4))  // shrd %cl
        check("0f bc 06", length: 3, r(0x9000, 4))  // bsf
        check("f3 0f b8 06", length: 4, r(0x9000, 4))  // popcnt
    }

    @Test func sse() {
        check("f3 0f 6f 06", length: 4, r(0x9000, 16))  // movdqu (%rsi),%xmm0
        check("f3 0f 7f 0f", length: 4, w(0xA000, 16))  // movdqu %xmm1,(%rdi)
        check("66 0f 6f 56 10", length: 5, r(0x9010, 16))  // movdqa
        check("0f 29 1f", length: 3, w(0xA000, 16))  // movaps store
        check("0f 10 26", length: 3, r(0x9000, 16))  // movups
        check("f3 0f 10 2e", length: 4, r(0x9000, 4))  // movss
        check("f2 0f 11 37", length: 4, w(0xA000, 8))  // movsd store
        check("66 0f 6e 06", length: 4, r(0x9000, 4))  // movd
        check("f3 0f 7e 06", length: 4, r(0x9000, 8))  // movq (%rsi),%xmm0
        check("66 0f d6 07", length: 4, w(0xA000, 8))  // movq %xmm0,(%rdi)
        check("66 48 0f 7e 07", length: 5, w(0xA000, 8))  // movq %xmm0,(%rdi) via 7E
        check("66 48 0f 6e c0", length: 5)  // movq %rax,%xmm0
        check("66 48 0f 7e f9", length: 5)  // movq %xmm7,%rcx
        check("f2 0f 58 06", length: 4, r(0x9000, 8))  // addsd
        check("0f 58 06", length: 3, r(0x9000, 16))  // addps
        check("f2 0f 2a 06", length: 4, r(0x9000, 4))  // cvtsi2sdl
        check("f2 48 0f 2a 06", length: 5, r(0x9000, 8))  // cvtsi2sdq
        check("f2 0f 2c 06", length: 4, r(0x9000, 8))  // cvttsd2si
        check("66 0f 2e 06", length: 4, r(0x9000, 8))  // ucomisd
        check("66 0f ef 06", length: 4, r(0x9000, 16))  // pxor
        check("66 0f 70 06 1b", length: 5, r(0x9000, 16))  // pshufd $0x1b
        check("0f 16 06", length: 3, r(0x9000, 8))  // movhps load
        check("0f 13 07", length: 3, w(0xA000, 8))  // movlps store
        check("66 0f e7 07", length: 4, w(0xA000, 16))  // movntdq
        check("0f c3 07", length: 3, w(0xA000, 4))  // movnti
        check("66 0f c4 06 02", length: 5, r(0x9000, 2))  // pinsrw $2,(%rsi),%xmm0
        check("66 0f 73 d8 04", length: 5)  // psrldq $4,%xmm0
        check("0f 57 c0", length: 3)  // xorps %xmm0,%xmm0
    }

    @Test func x87() {
        check("d9 06", length: 2, r(0x9000, 4))  // flds
        check("dd 06", length: 2, r(0x9000, 8))  // fldl
        check("db 2e", length: 2, r(0x9000, 10))  // fldt
        check("d9 1f", length: 2, w(0xA000, 4))  // fstps
        check("dd 1f", length: 2, w(0xA000, 8))  // fstpl
        check("db 3f", length: 2, w(0xA000, 10))  // fstpt
        check("db 06", length: 2, r(0x9000, 4))  // fildl
        check("df 2e", length: 2, r(0x9000, 8))  // fildll
        check("df 3f", length: 2, w(0xA000, 8))  // fistpll
        check("d9 3f", length: 2, w(0xA000, 2))  // fnstcw
        check("d9 2e", length: 2, r(0x9000, 2))  // fldcw
        check("dd 3f", length: 2, w(0xA000, 2))  // fnstsw
        check("d9 37", length: 2, w(0xA000, 28))  // fnstenv
        check("dd 37", length: 2, w(0xA000, 108))  // fnsave
        check("dc 4c 24 08", length: 4, r(0x7FF8, 8))  // fmull 0x8(%rsp)
        check("de c1", length: 2)  // faddp
        check("9b", length: 1)  // fwait is an instruction of its own
    }

    @Test func system() {
        check("0f 01 38", length: 3)  // invlpg (%rax)
        check("0f 01 07", length: 3, w(0xA000, 10))  // sgdt
        check("0f 01 17", length: 3, r(0xA000, 10))  // lgdt
        check("0f 01 4f 02", length: 4, w(0xA002, 10))  // sidt 0x2(%rdi)
        check("0f 01 1f", length: 3, r(0xA000, 10))  // lidt
        check("0f 00 17", length: 3, r(0xA000, 2))  // lldt (%rdi)
        check("0f 01 f8", length: 3)  // swapgs
        check("0f 01 d0", length: 3)  // xgetbv
        check("0f 1f 04 00", length: 4)  // nopl
        check("66 0f 1f 04 00", length: 5)  // nopw
        check("66 2e 0f 1f 84 00 00 00 00 00", length: 10)  // nopw %cs:0x0(%rax,%rax,1)
        check("0f 18 0f", length: 3)  // prefetcht0
        check("0f 0d 0f", length: 3)  // prefetchw
        check("0f ae 07", length: 3, w(0xA000, 512))  // fxsave
        check("48 0f ae 0e", length: 4, r(0x9000, 512))  // fxrstor64
        check("0f ae 1f", length: 3, w(0xA000, 4))  // stmxcsr
        check("0f ae 16", length: 3, r(0x9000, 4))  // ldmxcsr
        check("0f ae 3f", length: 3)  // clflush
        check("0f ae f0", length: 3)  // mfence
        check("0f 31", length: 2)  // rdtsc
        check("0f a2", length: 2)  // cpuid
        check("0f 05", length: 2)  // syscall
        check("0f 30", length: 2)  // wrmsr
        check("f4", length: 1)  // hlt
        check("f3 0f 1e fa", length: 4)  // endbr64
        check("0f 20 d8", length: 3)  // mov %cr3,%rax
        check("0f 22 c0", length: 3)  // mov %rax,%cr0
        check("0f 20 18", length: 3)  // mod bits ignored: still a register move
        check("e4 60", length: 2)  // in $0x60,%al
        check("ee", length: 1)  // out %al,(%dx)
        check("41 ff c0", length: 3)  // inc %r8d
        check("66 90", length: 2)
        check("0f 0b", length: 2)  // ud2
        check("0f c7 f8", length: 3)  // rdseed %eax
    }

    @Test func protected32() {
        let m = DecodeMode.protected32  // ds 0x30000, ss 0x20000, es 0x10000, fs 0x40000, gs 0x50000
        check("a1 34 12 00 00", m, length: 5, r(0x31234, 4))  // mov 0x1234,%eax
        check("8b 0d 34 12 00 00", m, length: 6, r(0x31234, 4))  // absolute, not eip-relative
        check("8b 45 fc", m, length: 3, r(0x27FFC, 4))  // -0x4(%ebp): SS
        check("8b 44 24 08", m, length: 4, r(0x27FF8, 4))  // 0x8(%esp): SS
        check("8b 04 28", m, length: 3, r(0x39000, 4))  // (%eax,%ebp,1): base eax, DS
        check("26 8b 07", m, length: 3, r(0x1A000, 4))  // es override
        check("c7 44 b3 10 01 00 00 00", m, length: 8, w(0x58010, 4))  // movl $1,0x10(%ebx,%esi,4)
        check("0f be 02", m, length: 3, r(0x33000, 1))  // movsbl (%edx)
        check("65 a3 14 00 00 00", m, length: 6, w(0x50014, 4))  // mov %eax,%gs:0x14
        // -0x8(%ebp) with ebp = 4: the offset and then the linear address wrap at 4 GiB
        check("8b 45 f8", m, with(regs32, [5: 4]), length: 3, r(0x1FFFC, 4))
        check("67 8b 00", m, length: 3, r(0x3D000, 4))  // addr16 (%bx,%si)
        check("40", m, length: 1)  // inc %eax, not REX
        check("48 8b 07", m, length: 1)  // dec %eax; the mov is the next instruction
        check("55", m, length: 1, w(0x27FEC, 4))
        check("66 6a 01", m, length: 3, w(0x27FEE, 2))  // pushw $1
        check("e8 00 01 00 00", m, length: 5, w(0x27FEC, 4))
        check("c3", m, length: 1, r(0x27FF0, 4))
        check("c9", m, length: 1, r(0x28000, 4))  // leave
        check("c8 08 00 01", m, length: 4, w(0x27FE8, 8))  // enter $8,$1
        check("1e", m, length: 1, w(0x27FEC, 4))  // push %ds
        check("07", m, length: 1, r(0x27FF0, 4))  // pop %es
        check("60", m, length: 1, w(0x27FD0, 32))  // pusha
        check("61", m, length: 1, r(0x27FF0, 32))  // popa
        check("f3 a5", m, length: 2, r(0x39000, 64), w(0x1A000, 64))  // rep movsl
        check("64 f3 a4", m, length: 3, r(0x49000, 16), w(0x1A000, 16))  // rep movsb %fs:(%esi)
        check("0f 01 17", m, length: 3, r(0x3A000, 6))  // lgdt (%edi)
        check("c4 07", m, length: 2, r(0x3A000, 6))  // les (%edi),%eax
        check("9a 78 56 34 12 10 00", m, length: 7, w(0x27FE8, 8))  // lcall $0x10,$0x12345678
        check("ff 1f", m, length: 2, r(0x3A000, 6), w(0x27FE8, 8))  // lcall *(%edi)
        check("d9 37", m, length: 2, w(0x3A000, 28))  // fnstenv
        check("66 d9 37", m, length: 3, w(0x3A000, 14))  // fnstenvs
        check("d7", m, length: 1, r(0x34000, 1))  // xlat
        refuse("cf", m)  // iret: 3 or 5 slots
        refuse("c4 e2 79 18 07", m)  // VEX
    }

    @Test func real16() {
        let m = DecodeMode.real16  // bx 0x100 si 0x20 di 0x30 bp 0x200 sp 0xfff0 cx 3
        check("8b 00", m, length: 2, r(0x30120, 2))  // mov (%bx,%si),%ax
        check("8b 43 04", m, length: 3, r(0x20234, 2))  // mov 0x4(%bp,%di),%ax: SS
        check("a1 34 12", m, length: 3, r(0x31234, 2))  // mov 0x1234,%ax (moffs16)
        check("8b 0e 78 56", m, length: 4, r(0x35678, 2))  // mov 0x5678,%cx (disp16)
        check("8b 46 00", m, length: 3, r(0x20200, 2))  // mov 0x0(%bp),%ax
        check("8b 47 fe", m, length: 3, r(0x300FE, 2))  // mov -0x2(%bx),%ax
        check("66 8b 00", m, length: 3, r(0x30120, 4))  // mov (%bx,%si),%eax
        check("67 66 8b 00", m, length: 4, r(0x31000, 4))  // mov (%eax),%eax
        check("36 89 04", m, length: 3, w(0x20020, 2))  // mov %ax,%ss:(%si)
        check("c7 87 fe 01 aa 55", m, length: 6, w(0x302FE, 2))  // movw $0x55aa,0x1fe(%bx)
        check("8b 00", m, with(regs16, [3: 0xFFFF, 6: 2]), length: 2, r(0x30001, 2))  // offset wraps at 64 KiB
        check("50", m, length: 1, w(0x2FFEE, 2))  // push %ax
        check("50", m, with(regs16, [4: 0]), length: 1, w(0x2FFFE, 2))  // sp wraps
        check("66 6a 01", m, length: 3, w(0x2FFEC, 4))  // pushl $1
        check("e8 fd 00", m, length: 3, w(0x2FFEE, 2))  // call rel16
        check("c3", m, length: 1, r(0x2FFF0, 2))
        check("cf", m, length: 1, r(0x2FFF0, 6))  // iret: ip cs flags
        check("f3 ab", m, length: 2, w(0x10030, 6))  // rep stosw, cx = 3
        check("0f 01 16 34 12", m, length: 5, r(0x31234, 6))  // lgdtw 0x1234
        check("66 0f 01 16 34 12", m, length: 6, r(0x31234, 6))  // lgdtl 0x1234
        check("ea 00 10 08 00", m, length: 5)  // ljmp $8,$0x1000
        check("66 ea 00 10 00 00 08 00", m, length: 8)  // ljmpl
        check("66 b8 78 56 34 12", m, length: 6)  // mov $imm32,%eax
        refuse("cd 10", m)  // int
    }

    @Test func refusals() {
        refuse("cc")  // int3
        refuse("cd 80")
        refuse("f1")
        refuse("62 f1 7c 48 10 07")  // EVEX
        refuse("c5 f8 77")  // vzeroupper (VEX)
        refuse("c4 e2 79 18 07")
        refuse("66 0f 38 00 06")  // pshufb: 0F 38 map
        refuse("66 0f 3a 0f c1 08")  // palignr: 0F 3A map
        refuse("8f c8")  // 8F /1
        refuse("ff ff")  // FF /7
        refuse("fe 17")  // FE /2
        refuse("8d c0")  // lea with a register source
        refuse("c6 0f 01")  // C6 /1
        refuse("c7 f8 00 00 00 00")  // xbegin
        refuse("d9 0f")  // D9 /1 memory
        refuse("66 e8 00 00")  // call with 66 in 64-bit mode: vendor-dependent
        refuse("0f ff 00")  // ud0
        refuse("0f 0f 06 9e")  // 3DNow!
        refuse("0f ae 27")  // xsave
        refuse("0f 01 c0")  // unknown 0F 01 register form
        refuse("d6")  // salc
        refuse("06")  // push es in 64-bit mode
        refuse("9a 00 00 00 00 00 00")
        refuse("0f b8 06")  // popcnt needs F3
        refuse("8e 0f")  // mov to CS
        refuse("0f b2 c0")  // lss from a register
    }

    @Test func truncatedAndOverlong() {
        for bytes in ["", "8b", "8b 05 34", "66", "48", "0f", "f3 0f", "0f 01", "8b 04", "8b 44 24",
                      "c7 05 00 00 00 00 01 00 00", "48 b8 01 02 03 04 05 06 07", "0f 85 00 00 00",
                      "a1 88 77 66 55 44 33 22", "c8 00", "66 0f 70 06", "f3 48"] {
            refuse(bytes)
        }
        refuse("a1 34 12 00", .protected32)
        refuse("8b 0e 78", .real16)
        // 15 bytes is the limit, prefixes included.
        let fourteen = Array(repeating: "66", count: 14).joined(separator: " ")
        check(fourteen + " 90", length: 15)
        refuse(fourteen + " 66 90")
        check("90 ff ff", length: 1)  // trailing bytes are ignored
        // Missing register entries read as 0 instead of trapping.
        let empty = DecodeRegisters(gpr: [], rip: 0, segmentBases: [])
        #expect(InstructionDecoder.decode(hex("64 8b 44 24 08"), mode: .long64, registers: empty)
            == DecodedInstruction(length: 5, accesses: [r(8, 4)]))
    }

    @Test func randomBytesNeverCrash() {
        var generator = SplitMix64(seed: 0x5EED_D3C0)
        var decoded = 0
        for _ in 0..<20000 {
            let count = Int(generator.next() % 16)
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            var gpr: [UInt64] = []
            for _ in 0..<16 { gpr.append(generator.next()) }
            let registers = DecodeRegisters(gpr: gpr, rip: generator.next(),
                                            segmentBases: (0..<6).map { _ in generator.next() },
                                            rflagsDF: generator.next() & 1 == 1)
            for mode in [DecodeMode.long64, .protected32, .real16] {
                guard let result = InstructionDecoder.decode(bytes, mode: mode, registers: registers) else { continue }
                decoded += 1
                #expect(result.length >= 1 && result.length <= min(bytes.count, 15))
                #expect(result.accesses.allSatisfy { $0.size > 0 && ($0.isRead || $0.isWrite) })
            }
        }
        #expect(decoded > 10000)
    }

    /// Every instruction of `touch_all` in guests/watch.c as gcc -O0 compiled it
    /// (`objdump -d guests/build/watch`), with rsp = 0x7000 and the caller's rbp = 0x7100 on entry.
    @Test func watchGuestTouchAll() {
        let code: [(address: UInt64, bytes: String, rsp: UInt64, rbp: UInt64, accesses: [MemoryAccess])] = [
            (0x10005B, "55", 0x7000, 0x7100, [w(0x6FF8, 8)]),  // push %rbp
            (0x10005C, "48 89 e5", 0x6FF8, 0x7100, []),  // mov %rsp,%rbp
            (0x10005F, "48 83 ec 10", 0x6FF8, 0x6FF8, []),  // sub $0x10,%rsp
            (0x100063, "c7 05 d3 01 00 00 01 00 00 00", 0x6FE8, 0x6FF8, [w(0x100240, 4)]),  // watched_a = 1
            (0x10006D, "8b 05 d1 01 00 00", 0x6FE8, 0x6FF8, [r(0x100244, 4)]),  // read watched_b
            (0x100073, "89 45 fc", 0x6FE8, 0x6FF8, [w(0x6FF4, 4)]),
            (0x100076, "c7 05 c8 01 00 00 03 00 00 00", 0x6FE8, 0x6FF8, [w(0x100248, 4)]),  // watched_c = 3
            (0x100080, "8b 05 c6 01 00 00", 0x6FE8, 0x6FF8, [r(0x10024C, 4)]),  // read watched_d
            (0x100086, "89 45 f8", 0x6FE8, 0x6FF8, [w(0x6FF0, 4)]),
            (0x100089, "c7 05 bd 01 00 00 05 00 00 00", 0x6FE8, 0x6FF8, [w(0x100250, 4)]),  // watched_e = 5
            (0x100093, "8b 55 fc", 0x6FE8, 0x6FF8, [r(0x6FF4, 4)]),
            (0x100096, "8b 45 f8", 0x6FE8, 0x6FF8, [r(0x6FF0, 4)]),
            (0x100099, "01 c2", 0x6FE8, 0x6FF8, []),
            (0x10009B, "8b 05 b3 01 00 00", 0x6FE8, 0x6FF8, [r(0x100254, 4)]),  // read reads_sum
            (0x1000A1, "01 d0", 0x6FE8, 0x6FF8, []),
            (0x1000A3, "89 05 ab 01 00 00", 0x6FE8, 0x6FF8, [w(0x100254, 4)]),  // write reads_sum
            (0x1000A9, "90", 0x6FE8, 0x6FF8, []),
            (0x1000AA, "c9", 0x6FE8, 0x6FF8, [r(0x6FF8, 8)]),  // leave
            (0x1000AB, "c3", 0x7000, 0x7100, [r(0x7000, 8)]),  // ret
        ]
        var stream: [UInt8] = []
        for (index, step) in code.enumerated() {
            var registers = DecodeRegisters(rip: step.address)
            registers.gpr[GPR.rsp] = step.rsp
            registers.gpr[GPR.rbp] = step.rbp
            let bytes = hex(step.bytes)
            stream += bytes
            let next = index + 1 < code.count ? code[index + 1].address : step.address + 1
            let decoded = InstructionDecoder.decode(bytes + [0xCC, 0xCC], mode: .long64, registers: registers)
            #expect(decoded == DecodedInstruction(length: Int(next - step.address), accesses: step.accesses),
                    "\(step.bytes)")
        }
        // Walking the whole function lands on every instruction boundary.
        var offset = 0
        for step in code {
            #expect(UInt64(offset) + 0x10005B == step.address)
            guard let decoded = InstructionDecoder.decode(Array(stream[offset...]), mode: .long64,
                                                          registers: DecodeRegisters()) else { break }
            offset += decoded.length
        }
        #expect(offset == stream.count)
    }

    @Test func overlaps() {
        let access = w(0x1000, 4)
        #expect(access.overlaps(address: 0x1003, size: 1))
        #expect(access.overlaps(address: 0xFFC, size: 5))
        #expect(!access.overlaps(address: 0x1004, size: 4))
        #expect(!access.overlaps(address: 0xFFC, size: 4))
        #expect(!access.overlaps(address: 0x1000, size: 0))
        #expect(r(UInt64.max - 1, 8).overlaps(address: UInt64.max, size: 1))
    }
}

/// A small seeded generator (SplitMix64) so the fuzz test is reproducible.
private struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The architectural limit on instruction length; longer ones raise #GP.
let maximumInstructionLength = 15

/// One decode in progress: the bytes, how far they have been consumed, the prefixes, and the
/// accesses found so far. Operand accesses stay symbolic until the length is known, because a
/// RIP-relative address depends on it.
struct DecodeState {
    let bytes: [UInt8]
    let mode: DecodeMode
    let registers: DecodeRegisters
    var position = 0
    var prefixes = Prefixes()
    var pending: [PendingAccess] = []

    init(bytes: [UInt8], mode: DecodeMode, registers: DecodeRegisters) {
        self.bytes = bytes
        self.mode = mode
        self.registers = registers
    }

    // MARK: Bytes

    mutating func next() throws(DecodeFailure) -> UInt8 {
        guard position < bytes.count, position < maximumInstructionLength else { throw .truncated }
        defer { position += 1 }
        return bytes[position]
    }

    func peek() throws(DecodeFailure) -> UInt8 {
        guard position < bytes.count, position < maximumInstructionLength else { throw .truncated }
        return bytes[position]
    }

    /// A little-endian immediate or displacement of `count` (at most 8) bytes, zero-extended.
    mutating func immediate(_ count: Int) throws(DecodeFailure) -> UInt64 {
        var value: UInt64 = 0
        for shift in 0..<count {
            value |= UInt64(try next()) << (8 * UInt64(shift))
        }
        return value
    }

    /// Steps over an immediate whose value does not matter.
    mutating func skip(_ count: Int) throws(DecodeFailure) {
        for _ in 0..<count { _ = try next() }
    }

    // MARK: Sizes

    var isLong: Bool { mode == .long64 }

    /// Operand size in bytes for "v" operands: 2, 4 or 8.
    var operandSize: Int {
        switch mode {
        case .long64: prefixes.rexW ? 8 : (prefixes.operandSizeOverride ? 2 : 4)
        case .protected32: prefixes.operandSizeOverride ? 2 : 4
        case .real16: prefixes.operandSizeOverride ? 4 : 2
        }
    }

    /// Size of a "z" immediate: 2 or 4 (64-bit operations sign-extend an imm32).
    var immediateSize: Int { min(operandSize, 4) }

    /// Address size in bytes: 2, 4 or 8.
    var addressSize: Int {
        switch mode {
        case .long64: prefixes.addressSizeOverride ? 4 : 8
        case .protected32: prefixes.addressSizeOverride ? 2 : 4
        case .real16: prefixes.addressSizeOverride ? 4 : 2
        }
    }

    var addressMask: UInt64 { mask(bytes: addressSize) }

    /// Width of a PUSH/POP slot: 64-bit mode pushes 8 bytes (2 with 66), never 4.
    var stackSlot: Int {
        isLong ? (prefixes.operandSizeOverride ? 2 : 8) : operandSize
    }

    /// Width of RSP as a stack pointer (SS.B is assumed to match the mode).
    var stackPointerMask: UInt64 {
        switch mode {
        case .long64: UInt64.max
        case .protected32: 0xFFFF_FFFF
        case .real16: 0xFFFF
        }
    }

    /// Slot size of near CALL/RET/JMP. In 64-bit mode it is 8; with a 66 prefix Intel still
    /// uses 8 and AMD uses 2, so such encodings are refused.
    func nearBranchSize() throws(DecodeFailure) -> Int {
        guard isLong else { return operandSize }
        if prefixes.operandSizeOverride { throw .unsupported }
        return 8
    }

    /// Size of a near relative branch displacement (E8, E9, 0F 8x).
    func relativeSize() throws(DecodeFailure) -> Int {
        guard isLong else { return operandSize }
        if prefixes.operandSizeOverride { throw .unsupported }
        return 4
    }

    // MARK: Addresses

    /// Segment offset to linear address: in 64-bit mode only FS and GS have bases; elsewhere
    /// the sum wraps at 4 GiB.
    func linear(_ offset: UInt64, segment: SegmentRegister) -> UInt64 {
        switch mode {
        case .long64:
            return segment == .fs || segment == .gs ? registers.base(of: segment) &+ offset : offset
        case .protected32, .real16:
            return (registers.base(of: segment) &+ offset) & 0xFFFF_FFFF
        }
    }

    /// The segment for a DS-relative implicit operand (XLAT, MOVS source, moffs).
    var dataSegment: SegmentRegister { prefixes.segment ?? .ds }

    mutating func add(_ address: UInt64, _ size: Int, _ use: Use) {
        pending.append(.fixed(MemoryAccess(address: address, size: size, isRead: use.isRead, isWrite: use.isWrite)))
    }

    /// Records the ModRM memory operand, if there is one. `displacement` is added to the
    /// offset (BT with a register bit offset); `rspBias` is added to RSP as a base (POP r/m
    /// computes its address after incrementing RSP).
    mutating func operand(_ modrm: ModRM, _ spec: OperandSpec, displacement: UInt64 = 0, rspBias: UInt64 = 0) {
        guard let memory = modrm.memory else { return }
        pending.append(.operand(memory, spec, displacement: displacement, rspBias: rspBias))
    }

    mutating func operand(_ modrm: ModRM, _ use: Use, _ size: Int) {
        operand(modrm, OperandSpec(use: use, size: size))
    }

    /// The final accesses, once the instruction's length is known.
    func resolved() -> [MemoryAccess] {
        let nextRIP = registers.rip &+ UInt64(position)
        return pending.map { access in
            switch access {
            case .fixed(let access):
                return access
            case .operand(let memory, let spec, let displacement, let rspBias):
                var offset = memory.displacement &+ displacement
                if memory.ripRelative { offset = offset &+ nextRIP }
                if let base = memory.base {
                    offset = offset &+ registers.register(base) &+ (base == GPR.rsp ? rspBias : 0)
                }
                if let index = memory.index {
                    offset = offset &+ registers.register(index) &* memory.scale
                }
                let address = linear(offset & addressMask, segment: prefixes.segment ?? memory.defaultSegment)
                return MemoryAccess(address: address, size: spec.size, isRead: spec.use.isRead, isWrite: spec.use.isWrite)
            }
        }
    }
}

/// An access whose address may still depend on the instruction length.
enum PendingAccess {
    case fixed(MemoryAccess)
    case operand(MemoryOperand, OperandSpec, displacement: UInt64, rspBias: UInt64)
}

/// All-ones in the low `bytes` bytes.
private func mask(bytes: Int) -> UInt64 {
    bytes >= 8 ? UInt64.max : (UInt64(1) << UInt64(8 * bytes)) - 1
}

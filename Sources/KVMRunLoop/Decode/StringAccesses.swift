/// String instructions (MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS): the source is
/// seg:RSI (DS unless overridden), the destination ES:RDI (never overridden). With a REP
/// prefix (F2 or F3) the whole range of RCX elements is reported, walking down when DF is set;
/// REPE/REPNE may stop earlier, so for CMPS/SCAS that range is an upper bound. RCX = 0 means
/// no access at all.
extension DecodeState {
    mutating func string(elementSize: Int, source: Use?, destination: Use?) throws(DecodeFailure) {
        let mask = addressMask
        var count: UInt64 = 1
        if prefixes.repeatPrefix != nil {
            count = registers.register(GPR.rcx) & mask
            if count == 0 { return }
        }
        let total = count.multipliedReportingOverflow(by: UInt64(elementSize))
        guard !total.overflow, total.partialValue <= UInt64(Int.max) else { throw .unsupported }
        /// Offset of the lowest element: with DF the elements run downwards from the start.
        func lowest(_ start: UInt64) -> UInt64 {
            registers.rflagsDF ? (start &- (total.partialValue &- UInt64(elementSize))) & mask : start & mask
        }
        if let source {
            add(linear(lowest(registers.register(GPR.rsi)), segment: dataSegment), Int(total.partialValue), source)
        }
        if let destination {
            add(linear(lowest(registers.register(GPR.rdi)), segment: .es), Int(total.partialValue), destination)
        }
    }

    /// A0-A3: MOV between the accumulator and a memory offset given as an address-sized
    /// immediate (8 bytes in 64-bit mode).
    mutating func moffs(_ use: Use, size: Int) throws(DecodeFailure) {
        let offset = try immediate(addressSize) & addressMask
        add(linear(offset, segment: dataSegment), size, use)
    }

    /// XLAT: reads the byte at seg:(RBX + AL).
    mutating func xlat() {
        let offset = (registers.register(GPR.rbx) &+ (registers.register(GPR.rax) & 0xFF)) & addressMask
        add(linear(offset, segment: dataSegment), 1, .read)
    }
}

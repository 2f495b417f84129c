/// Segment registers in encoding order (the order of `DecodeRegisters.segmentBases`).
enum SegmentRegister: Int, Sendable {
    case es, cs, ss, ds, fs, gs
}

/// General-purpose register numbers in encoding order.
enum GPR {
    static let rax = 0, rcx = 1, rdx = 2, rbx = 3, rsp = 4, rbp = 5, rsi = 6, rdi = 7
}

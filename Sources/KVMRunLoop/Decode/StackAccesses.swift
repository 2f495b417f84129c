/// Implicit stack accesses: pushes write just below RSP, pops read at RSP, always in SS.
extension DecodeState {
    /// Linear address of RSP + `delta`, wrapped to the stack pointer width.
    func stackAddress(_ delta: UInt64 = 0) -> UInt64 {
        linear((registers.register(GPR.rsp) &+ delta) & stackPointerMask, segment: .ss)
    }

    /// A push of `size` bytes (or several pushes totalling `size`).
    mutating func push(_ size: Int) {
        add(stackAddress(0 &- UInt64(size)), size, .write)
    }

    /// A pop of `size` bytes (or several pops totalling `size`).
    mutating func pop(_ size: Int) {
        add(stackAddress(), size, .read)
    }

    /// LEAVE: RSP = RBP, then pop RBP.
    mutating func leave() {
        let rbp = registers.register(GPR.rbp) & stackPointerMask
        add(linear(rbp, segment: .ss), stackSlot, .read)
    }

    /// ENTER imm16, imm8: pushes RBP, copies level-1 frame pointers from below RBP and pushes
    /// the new frame pointer; reported as one write below RSP and one read below RBP.
    mutating func enter() throws(DecodeFailure) {
        try skip(2)
        let level = Int(try next() & 31)
        let slot = stackSlot
        push(slot * (level == 0 ? 1 : level + 1))
        if level > 1 {
            let copied = UInt64(slot * (level - 1))
            let rbp = registers.register(GPR.rbp)
            add(linear((rbp &- copied) & stackPointerMask, segment: .ss), Int(copied), .read)
        }
    }
}

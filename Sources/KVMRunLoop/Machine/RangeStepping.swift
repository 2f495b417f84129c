/// gdb's range stepping (`vCont;r start,end`): step until the pc leaves [start, end). Instead of
/// one single step per instruction, the range is decoded once; the vCPU runs at full speed to
/// the instructions where control can leave it (debug-register execution breakpoints) and only
/// those are single-stepped.
///
/// The analysis is a linear sweep over the range's code. An instruction is an *exit* (stepped,
/// then the pc is checked) when it can go outside the range: a direct branch or call whose
/// target lies outside, or inside but not on an instruction the sweep found; anything indirect
/// (ret, jmp/call through a register or memory, int, syscall, hlt, iret); anything the decoder
/// does not know. Falling off the end of the range is caught by a breakpoint at the address
/// after the last instruction. Jumps and loops that stay inside run at full speed.
public struct RangeAnalysis: Sendable, Equatable {
    /// The range, as RIP values (CS offsets).
    public let start: UInt64
    public let end: UInt64
    /// Instruction addresses the sweep found, ascending.
    public private(set) var instructions: [UInt64] = []
    /// Instructions to single-step, ascending.
    public private(set) var exits: [UInt64] = []
    /// Every instruction that can jump at all (exits and jumps inside the range), ascending:
    /// with too few debug registers for every exit, the run goes to the next of these.
    public private(set) var transfers: [UInt64] = []
    /// Where a run falls out of the range at the end of the sweep (at or past `end`); nil when
    /// the sweep ended on an instruction that cannot fall through or that it could not decode.
    public private(set) var fallOut: UInt64?

    /// The most code one sweep decodes; a longer range is handled piecewise (a breakpoint at
    /// the sweep's end is stepped like an exit, and the sweep resumes from there).
    public static let sweepLimit = 64 * 1024

    /// Sweeps `code`, the bytes at RIP `from` (inside [start, end)), as far as `end` and at most
    /// `sweepLimit` bytes; `code` should extend 15 bytes past `end` where readable.
    public init(code: [UInt8], from: UInt64, start: UInt64, end: UInt64, mode: DecodeMode) {
        self.start = start
        self.end = end
        var offset = 0
        var address = from
        var direct: [(site: UInt64, target: UInt64)] = []
        var exitSet: Set<UInt64> = []
        var canFallThrough = true
        var finished = false
        // One 15-byte window, refilled in place (no allocation per instruction where 15 bytes
        // are left).
        var window = [UInt8](repeating: 0, count: 15)
        while address >= start, address < end, offset < RangeAnalysis.sweepLimit {
            if offset + 15 <= code.count {
                for i in 0..<15 { window[i] = code[offset + i] }
            } else {
                window = Array(code[min(offset, code.count)...])
            }
            guard let (length, flow) = InstructionDecoder.controlFlow(window, mode: mode, rip: address) else {
                instructions.append(address)
                exitSet.insert(address)
                transfers.append(address)
                canFallThrough = false
                finished = true
                break
            }
            instructions.append(address)
            switch flow {
            case .next:
                canFallThrough = true
            case .direct(let target, let fallsThrough):
                transfers.append(address)
                direct.append((address, target))
                canFallThrough = fallsThrough
            case .anywhere:
                transfers.append(address)
                exitSet.insert(address)
                canFallThrough = false
            }
            offset += length
            address &+= UInt64(length)
        }
        if !finished {
            // Out of the range: a breakpoint there catches the fall-out. At the sweep limit
            // (still inside) it marks where the next sweep begins.
            fallOut = canFallThrough || address < end ? address : nil
        }
        let known = Set(instructions)
        for (site, target) in direct where !(target >= start && target < end && known.contains(target)) {
            exitSet.insert(site)
        }
        exits = exitSet.sorted()
    }

    public func contains(_ pc: UInt64) -> Bool { pc >= start && pc < end }

    /// Whether the sweep found an instruction at `pc` (else a new sweep must start there).
    public func knows(_ pc: UInt64) -> Bool {
        var low = 0, high = instructions.count
        while low < high {
            let mid = (low + high) / 2
            if instructions[mid] < pc { low = mid + 1 } else { high = mid }
        }
        return low < instructions.count && instructions[low] == pc
    }

    /// What to do with the vCPU at `pc` (an instruction of the sweep, inside the range), with
    /// `freeSlots` debug registers to spare.
    public func decision(at pc: UInt64, freeSlots: Int) -> RangeDecision {
        if exits.contains(pc) || freeSlots == 0 { return .step }
        var stops = exits
        if let fallOut { stops.append(fallOut) }
        if stops.count <= freeSlots { return stops.isEmpty ? .step : .run(to: stops) }
        // Too few registers for every exit: run to the next jump of any kind (nothing can leave
        // the straight line before it), or to the fall-out.
        if let next = transfers.first(where: { $0 >= pc }) {
            return next == pc ? .step : .run(to: [next])
        }
        if let fallOut { return .run(to: [fallOut]) }
        return .step
    }
}

public enum RangeDecision: Sendable, Equatable {
    /// Single-step the instruction at the pc.
    case step
    /// Run at full speed with execution breakpoints at these RIP values.
    case run(to: [UInt64])
}

/// Which debug registers range stepping may use: those that gdb's breakpoints (and any other
/// user of DR0-3 in the run plan) leave disabled in DR7. The one place that decides it.
public enum DebugRegisterAllocation {
    /// DR0-3 indices whose local and global enable bits are clear in `dr7`.
    public static func freeSlots(dr7: UInt64) -> [Int] {
        (0..<4).filter { dr7 & (3 << (UInt64($0) * 2)) == 0 }
    }

    /// `debugRegs` (DR0-3, DR6, DR7) with execution breakpoints at `addresses` (linear) in free
    /// slots; returns the registers and the slots used. Addresses beyond the free slots are
    /// dropped (the caller asks for no more than there are).
    public static func arming(_ addresses: [UInt64], in debugRegs: [UInt64]) -> (regs: [UInt64], slots: [Int]) {
        var regs = debugRegs
        while regs.count < 8 { regs.append(0) }
        var used: [Int] = []
        for (slot, address) in zip(freeSlots(dr7: regs[7]), addresses) {
            regs[slot] = address
            // Global enable, execute (RW = 00), length 1 (LEN = 00).
            regs[7] &= ~(0xF << (16 + UInt64(slot) * 4))
            regs[7] |= 2 << (UInt64(slot) * 2)
            used.append(slot)
        }
        if !used.isEmpty { regs[7] |= 1 << 10 }
        return (regs, used)
    }
}

/// The decisions of one range step, apart from the vCPU: after each piece of the run (a single
/// step, or a run to breakpoints) it is told how that piece ended and where the vCPU is, and
/// says what comes next. gdb's rule is "step once, then keep stepping while in the range"; from
/// a pc inside the range that is no exit, a run to the exits does the same with one exit less
/// (a short line then costs a single KVM_RUN). From anywhere else the first piece is a step.
public struct RangeStepper: Sendable {
    public enum Next: Sendable, Equatable {
        case step
        /// Run with execution breakpoints at these linear addresses.
        case run(toLinear: [UInt64])
        /// The range step is over: tell the controller this.
        case report(VCPUStop)
    }

    public let start: UInt64
    public let end: UInt64
    /// gdb's own execution breakpoints in the plan (linear address per DR0-3 slot, nil where
    /// free): landing on one ends the range step as a hit on it.
    let gdbSlots: [UInt64?]
    let freeSlots: Int
    /// Every instruction is stepped and checked (watches on page-table pages).
    let stepOnly: Bool
    /// Debug-register slots the last run used for the range's exits.
    public var rangeSlots: Set<Int> = []
    private(set) var analysis: RangeAnalysis?
    /// How many sweeps were decoded and pieces run (for tests and statistics).
    public private(set) var sweeps = 0
    public private(set) var pieces = 0

    /// `debugRegs` and `armed` as the plan has them (DR0-3, DR6, DR7).
    public init(start: UInt64, end: UInt64, debugRegs: [UInt64], stepOnly: Bool = false) {
        self.start = start
        self.end = end
        let dr7 = debugRegs.count > 7 ? debugRegs[7] : 0
        gdbSlots = (0..<4).map { dr7 & (3 << (UInt64($0) * 2)) != 0 && $0 < debugRegs.count ? debugRegs[$0] : nil }
        freeSlots = DebugRegisterAllocation.freeSlots(dr7: dr7).count
        self.stepOnly = stepOnly
    }

    /// After the piece that ended with `stop` (nil before the first), with the vCPU's
    /// registers now; `code(linear, count)` reads guest code (breakpoints show the bytes they
    /// replaced).
    public mutating func next(after stop: VCPUStop?, rip: UInt64, csBase: UInt64, mode: DecodeMode,
                              code: (UInt64, Int) -> [UInt8]) -> Next {
        if let stop {
            switch stop {
            case .stepped:
                break
            case .hardwareBreakpoint(let slot) where rangeSlots.contains(slot):
                break
            default:
                return .report(stop)
            }
            guard rip >= start, rip < end else { return .report(.stepped) }
            if let slot = gdbSlots.firstIndex(where: { $0 == csBase &+ rip }) {
                // gdb's hardware breakpoint here: the next run would start by stepping past it.
                return .report(.hardwareBreakpoint(slot: slot))
            }
        } else if rip < start || rip >= end {
            pieces += 1
            return .step
        }
        // (Resuming from gdb's own breakpoint at the pc, the first run steps past it quietly.)
        pieces += 1
        if stepOnly { return .step }
        if analysis?.knows(rip) != true {
            let count = Int(min(end &- rip, UInt64(RangeAnalysis.sweepLimit))) + 15
            analysis = RangeAnalysis(code: code(csBase &+ rip, count), from: rip, start: start, end: end, mode: mode)
            sweeps += 1
        }
        switch analysis!.decision(at: rip, freeSlots: freeSlots) {
        case .step: return .step
        case .run(let stops): return .run(toLinear: stops.map { csBase &+ $0 })
        }
    }
}

import CKVM

/// What gdb asked the VMM to decide at a breakpoint (a condition, `dprintf` commands), decided
/// on the vCPU's own thread at the hit: a false condition resumes the vCPU there and then,
/// without the controller or gdb hearing of it. The gdbvmm executable implements it over the
/// RSP module's agent expressions.
public protocol BreakpointAgent: Sendable {
    /// Whether this hit stops (gdb hears of it). Text for gdb's console goes to `output`.
    func decide(_ frame: BreakpointFrame, output: inout [UInt8]) -> Bool
}

/// A vCPU at a breakpoint hit: its registers as the exit left them (no ioctl), and guest memory
/// read through its page tables, with the original bytes where breakpoints are planted.
public struct BreakpointFrame {
    public let regs: kvm_regs
    public let sregs: kvm_sregs
    let ram: GuestRAM
    let breakpoints: BreakpointTable

    init(regs: kvm_regs, sregs: kvm_sregs, ram: GuestRAM, breakpoints: BreakpointTable) {
        self.regs = regs
        self.sregs = sregs
        self.ram = ram
        self.breakpoints = breakpoints
    }

    /// `count` bytes at a linear address; nil if any of them is unmapped.
    public func read(linear address: UInt64, count: Int) -> [UInt8]? {
        guard count >= 0, count <= 0x10000 else { return nil }
        let paging = PagingState(cr0: sregs.cr0, cr3: sregs.cr3, cr4: sregs.cr4, efer: sregs.efer)
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var cursor = address
        while out.count < count {
            let chunk = min(Int(0x1000 - (cursor & 0xFFF)), count - out.count)
            guard let t = PageWalker.translate(cursor, paging: paging, memory: ram),
                  var bytes = try? ram.read(at: t.physical, count: chunk) else { return nil }
            for i in 0..<chunk {
                if let original = breakpoints.original(atPhysical: t.physical &+ UInt64(i)) { bytes[i] = original }
            }
            out += bytes
            cursor &+= UInt64(chunk)
        }
        return out
    }
}

/// The vCPU thread's side: a stop that a breakpoint's agent decides not to report.
enum BreakpointAgents {
    /// True when `stop` is a debug-register breakpoint hit whose agent says run on: the caller
    /// steps past it with the debug registers disarmed and re-enters. Console text the agent
    /// produced is queued for gdb either way.
    static func runsOn(_ stop: VCPUStop, backend: some VCPUBackend, environment: any ExitEnvironment) -> Bool {
        guard case .hardwareBreakpoint = stop, let regs = try? backend.getRegs(), let sregs = try? backend.getSregs() else {
            return false
        }
        return environment.agentRunsOn(regs: regs, sregs: sregs)
    }
}

extension ExitEnvironment {
    /// Environments without agents (test fakes) stop at every breakpoint.
    public func agentRunsOn(regs: kvm_regs, sregs: kvm_sregs) -> Bool { false }
}

extension GuestEnvironment {
    func agentRunsOn(regs: kvm_regs, sregs: kvm_sregs) -> Bool {
        guard let agent = breakpoints.agent(atLinear: sregs.cs.base &+ regs.rip) else { return false }
        var output: [UInt8] = []
        let stops = agent.decide(BreakpointFrame(regs: regs, sregs: sregs, ram: ram, breakpoints: breakpoints),
                                 output: &output)
        if !output.isEmpty { breakpoints.queueOutput(output) }
        return !stops
    }
}

import CKVM
import KVMRunLoop
import RSP

/// gdb's target-side conditions and dprintf commands for one breakpoint, decided on the vCPU's
/// thread at each hit (KVMRunLoop's BreakpointAgent) with the RSP module's evaluator.
struct ConditionAgent: BreakpointAgent {
    let options: BreakpointOptions
    let architecture: TargetArchitecture

    func decide(_ frame: BreakpointFrame, output: inout [UInt8]) -> Bool {
        options.decide(in: FrameContext(frame: frame, architecture: architecture), output: &output)
    }
}

/// A hit as agent expressions see it: registers in gdb's numbering for the architecture gdb was
/// given, memory through the guest's page tables.
private final class FrameContext: AgentContext {
    let frame: BreakpointFrame
    let architecture: TargetArchitecture
    /// Built on the first `reg`: most conditions on locals never read a register but rbp/rsp.
    private var registers: X86_64Registers?

    init(frame: BreakpointFrame, architecture: TargetArchitecture) {
        self.frame = frame
        self.architecture = architecture
    }

    func register(_ number: Int) -> UInt64? {
        if registers == nil { registers = CPUState.generalRegisters(regs: frame.regs, sregs: frame.sregs) }
        return registers!.agentValue(ofRegister: number, architecture: architecture)
    }

    func readMemory(_ address: UInt64, count: Int) -> [UInt8]? {
        frame.read(linear: frame.sregs.cs.base &+ address, count: count)
    }
}

extension Controller: BreakpointAgentTarget {
    func insertBreakpoint(_ kind: BreakpointKind, address: UInt64, length: Int,
                          options: BreakpointOptions) throws(TargetError) {
        try insertBreakpoint(kind, address: address, length: length)
        machine.setBreakpointAgent(ConditionAgent(options: options, architecture: architecture),
                                   at: address, vcpu: currentVCPU)
    }

    /// dprintf text the vCPUs queued, to gdb's console as `O` packets (only while gdb waits
    /// for a stop: otherwise it has nowhere to go).
    func forwardAgentOutput() {
        let text = machine.takeAgentOutput()
        guard !text.isEmpty, let session, let connection else { return }
        let bytes = session.consoleOutput(text)
        if !bytes.isEmpty { _ = connection.send(bytes) }
    }
}

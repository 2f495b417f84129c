import CKVM
import Foundation
import Glibc

public enum RunMode: Sendable, Equatable { case run, step }

/// What a resumed vCPU is to do, and the guest-debug setup to do it with.
struct RunCommand: Sendable {
    var mode: RunMode
    /// KVM_GUESTDBG_* flags without SINGLESTEP (added for steps).
    var debugFlags: UInt32
    /// DR0-3, DR6 (unused), DR7 as KVM_SET_GUEST_DEBUG takes them.
    var debugRegs: [UInt64]
    /// Armed hardware-breakpoint addresses, so a vCPU sitting on one can step past it first
    /// (RF does not skip it on every host, see PLATFORM.md).
    var hardwareBreakpoints: [UInt64]
    var blockIRQ: Bool
    /// A watch lies on a page-table page: run one instruction at a time and check after each.
    var watchByStepping: Bool
}

/// The per-vCPU thread: parked until told to run, then KVM_RUN until something the controller
/// must know about; fast device exits are served here without stopping anything.
final class VCPUThread: @unchecked Sendable {
    // SAFETY (Sendable): `command`, `parked`, `stopRequested` and `thread` are guarded by `cond`;
    // the VCPU's ioctls are ordered by the park/resume handshake (see VCPU).
    let vcpu: VCPU
    private unowned let machine: Machine
    private let cond = NSCondition()
    private var command: RunCommand?
    private var parked = true
    private var stopRequested = false
    private var probeRequested = false
    /// The answer to the last probe: halted with interrupts off (nothing can wake it).
    private var probeAnswer: Bool?
    private var thread: pthread_t?

    init(vcpu: VCPU, machine: Machine) {
        self.vcpu = vcpu
        self.machine = machine
    }

    func start() {
        let t = Thread { [self] in self.main() }
        t.name = "vCPU \(vcpu.index)"
        t.stackSize = 1 << 20
        t.start()
        cond.lock()
        while thread == nil { cond.wait() }
        cond.unlock()
    }

    var isParked: Bool {
        cond.lock()
        defer { cond.unlock() }
        return parked
    }

    func resume(_ command: RunCommand) {
        cond.lock()
        self.command = command
        parked = false
        stopRequested = false
        cond.broadcast()
        cond.unlock()
    }

    /// Kicks the vCPU out of KVM_RUN (immediate_exit for the window before it enters, a signal
    /// for when it is inside). It then parks and posts `.interrupted`, or its own stop if it had one.
    func requestStop() {
        cond.lock()
        defer { cond.unlock() }
        guard !parked else { return }
        stopRequested = true
        vcpu.requestImmediateExit()
        if let thread { pthread_kill(thread, ckvm_kick_signal()) }
    }

    /// With an in-kernel irqchip HLT never leaves KVM, so the controller asks now and then:
    /// the vCPU is kicked, looks at its own mp_state and IF, and runs on. Returns nil if the
    /// vCPU is parked (its status is known) or did not answer within a second.
    func probeHalted() -> Bool? {
        cond.lock()
        defer { cond.unlock() }
        guard !parked else { return nil }
        probeRequested = true
        probeAnswer = nil
        vcpu.requestImmediateExit()
        if let thread { pthread_kill(thread, ckvm_kick_signal()) }
        let deadline = Date().addingTimeInterval(1)
        while probeAnswer == nil && !parked {
            if !cond.wait(until: deadline) { break }
        }
        return probeAnswer
    }

    private func answerProbeIfAsked() {
        cond.lock()
        let asked = probeRequested
        probeRequested = false
        cond.unlock()
        guard asked else { return }
        var halted = false
        if let state = try? vcpu.getMPState(), let regs = try? vcpu.getRegs() {
            let waiting = state == UInt32(KVM_MP_STATE_UNINITIALIZED) || state == UInt32(KVM_MP_STATE_INIT_RECEIVED)
            halted = waiting || (state == UInt32(KVM_MP_STATE_HALTED) && regs.rflags & (1 << 9) == 0)
        }
        cond.lock()
        probeAnswer = halted
        cond.broadcast()
        cond.unlock()
    }

    func waitUntilParked() {
        cond.lock()
        while !parked { cond.wait() }
        cond.unlock()
    }

    private var shouldStop: Bool {
        cond.lock()
        defer { cond.unlock() }
        return stopRequested
    }

    private func main() {
        _ = ckvm_unblock_all_signals()
        cond.lock()
        thread = pthread_self()
        cond.broadcast()
        while true {
            while command == nil { cond.wait() }
            let cmd = command!
            command = nil
            cond.unlock()
            let stop = runUntilStop(cmd)
            cond.lock()
            // Posted before `parked` turns true, under the same lock: whoever waits for the
            // park (pauseAll) then finds the stop already queued.
            machine.stops.post(vcpu: vcpu.index, stop: stop)
            parked = true
            cond.broadcast()
        }
    }

    private func debugFlags(_ cmd: RunCommand, stepping: Bool, hardware: Bool) -> UInt32 {
        var flags = cmd.debugFlags
        if !hardware { flags &= ~UInt32(KVM_GUESTDBG_USE_HW_BP) }
        if stepping {
            flags |= UInt32(KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP)
            if cmd.blockIRQ { flags |= UInt32(KVM_GUESTDBG_BLOCKIRQ) }
        }
        if flags & ~UInt32(KVM_GUESTDBG_ENABLE) == 0 { flags = 0 }
        return flags
    }

    private func runUntilStop(_ cmd: RunCommand) -> VCPUStop {
        do {
            return try runLoop(cmd)
        } catch {
            return .crash(Crash(.internalError, "vCPU \(vcpu.index): \(error)"))
        }
    }

    /// The watchpoint fallback: decode the instruction KVM could not emulate (to see what it
    /// reads), snapshot the watched bytes (to see what it writes), lift the traps, single-step
    /// it, and put the traps back. Returns a watchpoint hit, or a stop that ended the step.
    private func stepThroughTrappedPage(_ cmd: RunCommand) throws -> VCPUStop? {
        let watches = machine.watches
        let before = try vcpu.getRegs()
        var reads = try machine.decodedReads(vcpu: vcpu)
        let watchedBefore = watches.watchedBytes()
        try watches.setLifted(true)
        defer { try? watches.setLifted(false) }
        try vcpu.setGuestDebug(flags: debugFlags(cmd, stepping: true, hardware: false), debugRegs: cmd.debugRegs)
        defer { try? vcpu.setGuestDebug(flags: debugFlags(cmd, stepping: cmd.mode == .step || cmd.watchByStepping,
                                                          hardware: true),
                                         debugRegs: cmd.debugRegs) }
        stepping: while true {
            let exit = try vcpu.runOnce()
            switch exit {
            case .io(let access):
                if let stop = machine.handleIO(access, data: vcpu.ioData(access)) { return stop }
            case let .mmio(address, length, isWrite, data):
                _ = try machine.handleMMIO(vcpu: vcpu, address: address, length: length, isWrite: isWrite, data: data)
            case .debug:
                break stepping
            case .interrupted, .other:
                continue
            case .internalError(let sub, _):
                let rip = (try? vcpu.getRegs().rip) ?? 0
                return .crash(Crash(.emulationFailure,
                                    "KVM could not emulate the instruction at rip 0x\(String(rip, radix: 16)) (suberror \(sub))"))
            case .shutdown:
                return .crash(Crash(.tripleFault, "triple fault (KVM_EXIT_SHUTDOWN)"))
            case .hlt:
                return .halted
            case .failEntry, .systemEvent:
                return .crash(Crash(.entryFailure, "KVM could not enter the guest while stepping past a watched page"))
            }
        }
        // A trap-flag step runs one iteration of a REP string instruction: RIP stays put.
        if try vcpu.getRegs().rip == before.rip {
            reads = try machine.decodedReads(vcpu: vcpu, regs: before, oneIteration: true)
        }
        for (watch, old) in watchedBefore {
            let now = watch.pieces.flatMap { (try? machine.ram.read(at: $0.physical, count: $0.length)) ?? [] }
            if let i = old.indices.first(where: { $0 < now.count && old[$0] != now[$0] }) {
                return .watchpoint(watch.kind == .access ? .access : .write, address: watch.virtual + UInt64(i))
            }
        }
        for access in reads {
            if let (kind, virtual) = watches.hitVirtual(address: access.address, length: access.size, reads: true) {
                return .watchpoint(kind, address: virtual)
            }
        }
        return nil
    }

    private func runLoop(_ cmd: RunCommand) throws -> VCPUStop {
        // Stepping past a hardware breakpoint we sit on: one quiet step with the slots disarmed.
        var steppingOver = false
        if !cmd.hardwareBreakpoints.isEmpty {
            let regs = try vcpu.getRegs()
            let sregs = try vcpu.getSregs()
            steppingOver = cmd.hardwareBreakpoints.contains(sregs.cs.base &+ regs.rip)
        }
        let alwaysStep = cmd.mode == .step || cmd.watchByStepping
        try vcpu.setGuestDebug(flags: debugFlags(cmd, stepping: alwaysStep || steppingOver,
                                                 hardware: !steppingOver),
                               debugRegs: cmd.debugRegs)
        // Watches checked by stepping: what the next instruction reads, and the watched bytes
        // before it runs.
        var stepCheck: (snapshot: [(WatchTraps.Piece, WatchKind, [UInt8])], reads: [MemoryAccess])?
        while true {
            if shouldStop { return .interrupted }
            if cmd.watchByStepping && stepCheck == nil {
                stepCheck = (machine.watches.steppedSnapshot(), try machine.decodedReads(vcpu: vcpu))
            }
            let started = DispatchTime.now().uptimeNanoseconds
            let exit = try vcpu.runOnce()
            machine.statistics.record(vcpu: vcpu.index, exit: exit,
                                      nanoseconds: DispatchTime.now().uptimeNanoseconds &- started)
            switch exit {
            case .io(let access):
                if let stop = machine.handleIO(access, data: vcpu.ioData(access)) { return stop }
            case let .mmio(address, length, isWrite, data):
                if let stop = try machine.handleMMIO(vcpu: vcpu, address: address, length: length,
                                                     isWrite: isWrite, data: data) {
                    return stop
                }
            case .hlt:
                // Without an in-kernel irqchip nothing can ever wake a halted vCPU.
                return cmd.mode == .step ? .stepped : .halted
            case let .debug(exception, pc, dr6, _):
                if exception == 1 {
                    let hit = Int(dr6 & 0xF)
                    if hit != 0, !steppingOver {
                        return .hardwareBreakpoint(slot: hit.trailingZeroBitCount)
                    }
                    if dr6 & (1 << 14) != 0 {
                        if let check = stepCheck {
                            stepCheck = nil
                            if let (kind, address) = machine.watches.steppedHit(snapshot: check.snapshot, reads: check.reads) {
                                return .watchpoint(kind, address: address)
                            }
                        }
                        if steppingOver {
                            steppingOver = false
                            if cmd.mode == .step { return .stepped }
                            try vcpu.setGuestDebug(flags: debugFlags(cmd, stepping: alwaysStep, hardware: true),
                                                   debugRegs: cmd.debugRegs)
                            continue
                        }
                        if cmd.mode == .step { return .stepped }
                        if cmd.watchByStepping { continue }
                        return .stepped
                    }
                    return .guestDebugTrap(exception: 1)
                }
                if exception == 3 {
                    if try machine.isPlantedBreakpoint(vcpu: vcpu, linear: pc) { return .softwareBreakpoint }
                    // The guest's own int3 (KVM intercepts every #BP while we use software
                    // breakpoints): hand it to the guest's IDT, as it would run without us.
                    try vcpu.deliverGuestBreakpoint(advanceRIP: false)
                    continue
                }
                return .guestDebugTrap(exception: exception)
            case .shutdown:
                return .crash(Crash(.tripleFault, "triple fault (KVM_EXIT_SHUTDOWN)"))
            case .failEntry(let reason):
                return .crash(Crash(.entryFailure,
                                    "KVM could not enter the guest (hardware entry failure reason 0x\(String(reason, radix: 16)))"))
            case let .internalError(suberror, data):
                // On a paravirtual KVM an int3 at CPL0 surfaces as an emulation failure (PLATFORM.md).
                if suberror == UInt32(KVM_INTERNAL_ERROR_EMULATION) {
                    let regs = try vcpu.getRegs()
                    let sregs = try vcpu.getSregs()
                    if try machine.isPlantedBreakpoint(vcpu: vcpu, linear: sregs.cs.base &+ regs.rip) {
                        return .softwareBreakpoint
                    }
                    // Some hosts cannot emulate an int3 at CPL0 at all (PLATFORM.md): deliver the
                    // guest's own breakpoint exception to its IDT ourselves.
                    if try machine.isGuestInt3(vcpu: vcpu, linear: sregs.cs.base &+ regs.rip) {
                        try vcpu.deliverGuestBreakpoint(advanceRIP: true)
                        continue
                    }
                    // KVM cannot fetch code (or walk page tables) from a page we trapped for a
                    // watchpoint: run that one instruction with the traps lifted.
                    if !machine.watches.isEmpty {
                        if let stop = try stepThroughTrappedPage(cmd) { return stop }
                        if cmd.mode == .step { return .stepped }
                        continue
                    }
                    return .crash(Crash(.emulationFailure,
                                        "KVM could not emulate the instruction at rip 0x\(String(regs.rip, radix: 16))"))
                }
                let words = data.map { "0x" + String($0, radix: 16) }.joined(separator: " ")
                return .crash(Crash(.internalError, "KVM internal error, suberror \(suberror) \(words)"))
            case .systemEvent(let type):
                if type == UInt32(KVM_SYSTEM_EVENT_SHUTDOWN) { return .exit(status: 0) }
                return .crash(Crash(.reset, "the guest asked for a system reset (event \(type))"))
            case .interrupted:
                answerProbeIfAsked()
                continue
            case .other(let reason):
                // IRQ-window and similar exits need nothing from us: re-enter.
                if reason == UInt32(KVM_EXIT_IRQ_WINDOW_OPEN) || reason == UInt32(KVM_EXIT_INTR) { continue }
                return .crash(Crash(.internalError, "unexpected KVM exit reason \(reason)"))
            }
        }
    }
}

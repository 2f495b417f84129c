import CKVM

/// What a vCPU is doing at the moment an exit arrives: the part of its run that decides what
/// an exit means.
public struct ExitContext: Sendable, Equatable {
    public var mode: RunMode
    /// Stepping one instruction with the watch traps lifted (the watchpoint fallback).
    public var untrappedStep: Bool
    /// Watches on page-table pages: every instruction is stepped and checked.
    public var watchByStepping: Bool
    /// One quiet step past an armed hardware breakpoint the vCPU sits on.
    public var steppingOver: Bool
    /// The current instruction is being completed (re-entered with immediate_exit) before
    /// this is reported.
    public var finishing: Finishing?

    public enum Finishing: Sendable, Equatable {
        case report(VCPUStop)
        /// The instruction was a single step: when it completes, the step has ended.
        case step
    }

    public init(mode: RunMode, untrappedStep: Bool = false, watchByStepping: Bool = false,
                steppingOver: Bool = false, finishing: Finishing? = nil) {
        self.mode = mode
        self.untrappedStep = untrappedStep
        self.watchByStepping = watchByStepping
        self.steppingOver = steppingOver
        self.finishing = finishing
    }

    /// Every instruction ends in a #DB: any exit in between belongs to the stepped instruction.
    public var singleStepping: Bool { mode == .step || untrappedStep || watchByStepping || steppingOver }
}

/// What the run loop does after an exit.
public struct ExitAction: Sendable, Equatable {
    public enum Completion: Sendable, Equatable {
        case none
        case ioRead([UInt8])
        case mmioRead(UInt64)
    }

    public enum Next: Sendable, Equatable {
        case reenter
        /// Complete the current instruction (re-enter with immediate_exit), then act on `finishing`.
        case finishInstruction(ExitContext.Finishing)
        case stop(VCPUStop)
        /// Hand the guest's own int3 to its IDT, then re-enter.
        case deliverGuestBreakpoint(advanceRIP: Bool)
        /// Complete an FWAIT the emulator could not run (`VCPUBackend.completeFWait`), re-enter.
        case completeFWait
        /// The same while stepping: completing it is the step.
        case finishFWaitStep
        /// The quiet step past a hardware breakpoint ended: re-arm it and run on.
        case steppedOver
        /// A checked step ended: compare the watched bytes and reads.
        case checkWatchStep
        /// A kick: look at what the controller asked for.
        case mailbox
    }

    public var completion: Completion
    public var next: Next

    public init(_ next: Next, completion: Completion = .none) {
        self.completion = completion
        self.next = next
    }
}

/// The register state a debug exit is judged by (from kvm_run's sync area: no ioctl).
public struct ExitRegisters: Sendable {
    public var regs: kvm_regs
    public var sregs: kvm_sregs

    public init(regs: kvm_regs, sregs: kvm_sregs) {
        self.regs = regs
        self.sregs = sregs
    }

    public var paging: PagingState { PagingState(cr0: sregs.cr0, cr3: sregs.cr3, cr4: sregs.cr4, efer: sregs.efer) }
    public var linearPC: UInt64 { sregs.cs.base &+ regs.rip }
}

/// What happens on an exit, decided without KVM: a function of the exit, what the vCPU was
/// doing, and the devices, breakpoints and watches. Device side effects (a serial byte) happen
/// through the environment; everything the vCPU itself must do comes back as the action.
public enum ExitHandler {
    public static func handle(_ exit: VMExit, context: ExitContext, environment: any ExitEnvironment,
                              registers: () -> ExitRegisters?) -> ExitAction {
        switch exit {
        case .io(let access):
            let result = environment.portIO(access)
            let completion: ExitAction.Completion = access.isOut ? .none : .ioRead(result.input)
            switch result.effect {
            case .exit(let status): return ExitAction(.stop(.exit(status: status)), completion: completion)
            case .powerOff: return ExitAction(.stop(.exit(status: 0)), completion: completion)
            case .reset: return ExitAction(.stop(.exit(status: DeviceEffect.resetStatus)), completion: completion)
            case .none: return ExitAction(afterAccess(context, hit: nil), completion: completion)
            }
        case .mmio(let access):
            let result = environment.mmio(access, paging: { registers()?.paging })
            let completion: ExitAction.Completion = access.isWrite ? .none : .mmioRead(result.value)
            let hit = result.hit.map { VCPUStop.watchpoint($0.kind, address: $0.address) }
            return ExitAction(afterAccess(context, hit: hit), completion: completion)
        case .hlt:
            // Without an in-kernel irqchip nothing can ever wake a halted vCPU.
            return ExitAction(.stop(context.mode == .step ? .stepped : .halted))
        case let .debug(exception, pc, dr6, _):
            if let finishing = context.finishing, exception == 1 {
                // VMX/SVM report the step trap of a completed port or MMIO instruction this way.
                return ExitAction(finished(finishing, context))
            }
            switch exception {
            case 1:
                let hit = Int(dr6 & 0xF)
                if hit != 0, !context.steppingOver { return ExitAction(.stop(.hardwareBreakpoint(slot: hit.trailingZeroBitCount))) }
                if dr6 & (1 << 14) != 0 { return ExitAction(stepEnded(context)) }
                return ExitAction(.stop(.guestDebugTrap(exception: 1)))
            case 3:
                guard let r = registers() else { return ExitAction(.stop(.crash(Crash(.internalError, "cannot read the registers after a #BP exit")))) }
                if environment.breakpointOwner(atLinear: pc, paging: r.paging) == .debugger {
                    return ExitAction(.stop(.softwareBreakpoint))
                }
                // The guest's own int3 (KVM intercepts every #BP while we use software
                // breakpoints): hand it to the guest's IDT, as it would run without us.
                return ExitAction(.deliverGuestBreakpoint(advanceRIP: false))
            default:
                return ExitAction(.stop(.guestDebugTrap(exception: exception)))
            }
        case .interrupted:
            if let finishing = context.finishing { return ExitAction(finished(finishing, context)) }
            return ExitAction(.mailbox)
        case .shutdown:
            return ExitAction(.stop(.crash(Crash(.tripleFault, "triple fault (KVM_EXIT_SHUTDOWN)"))))
        case .failEntry(let reason):
            return ExitAction(.stop(.crash(Crash(.entryFailure,
                "KVM could not enter the guest (hardware entry failure reason 0x\(String(reason, radix: 16)))"))))
        case let .internalError(suberror, data):
            guard suberror == UInt32(KVM_INTERNAL_ERROR_EMULATION) else {
                let words = data.map { "0x" + String($0, radix: 16) }.joined(separator: " ")
                return ExitAction(.stop(.crash(Crash(.internalError, "KVM internal error, suberror \(suberror) \(words)"))))
            }
            guard let r = registers() else {
                return ExitAction(.stop(.crash(Crash(.emulationFailure, "KVM could not emulate an instruction"))))
            }
            // On a paravirtual KVM an int3 at CPL0 surfaces as an emulation failure (PLATFORM.md).
            switch environment.breakpointOwner(atLinear: r.linearPC, paging: r.paging) {
            case .debugger: return ExitAction(.stop(.softwareBreakpoint))
            // Some hosts cannot emulate an int3 at CPL0 at all: deliver it to the guest's IDT.
            case .guest: return ExitAction(.deliverGuestBreakpoint(advanceRIP: true))
            case .none: break
            }
            let bytes = environment.instructionBytes(atLinear: r.linearPC, paging: r.paging)
            // Linux's fpu__drop runs FWAIT in kernel mode, which some emulators lack; it is a
            // no-op unless an x87 exception is pending, so gdbvmm completes it itself.
            if bytes.first == 0x9B { return ExitAction(context.mode == .step ? .finishFWaitStep : .completeFWait) }
            // KVM cannot fetch code (or walk page tables) from a page we trapped for a
            // watchpoint: that one instruction must run with the traps lifted.
            if environment.hasWatches && !context.untrappedStep {
                return ExitAction(.stop(.untrappedStepNeeded))
            }
            return ExitAction(.stop(.crash(Crash(.emulationFailure,
                "KVM could not emulate the instruction at rip 0x\(String(r.regs.rip, radix: 16)): "
                    + InstructionName.describe(bytes)))))
        case .systemEvent(let type):
            if type == UInt32(KVM_SYSTEM_EVENT_SHUTDOWN) { return ExitAction(.stop(.exit(status: 0))) }
            return ExitAction(.stop(.crash(Crash(.reset, "the guest asked for a system reset (event \(type))"))))
        case .other(let reason):
            // IRQ-window and similar exits need nothing from us: re-enter.
            if reason == UInt32(KVM_EXIT_IRQ_WINDOW_OPEN) || reason == UInt32(KVM_EXIT_INTR) { return ExitAction(.reenter) }
            return ExitAction(.stop(.crash(Crash(.internalError, "unexpected KVM exit reason \(reason)"))))
        }
    }

    /// After a port or MMIO access was served. A watch hit is reported once the instruction has
    /// completed, as gdb expects of watchpoints. While single-stepping, the access belongs to the
    /// stepped instruction: it is completed and the step ends there (some hosts would otherwise
    /// run one more instruction before the step trap: PLATFORM.md, `out`).
    private static func afterAccess(_ context: ExitContext, hit: VCPUStop?) -> ExitAction.Next {
        if case .report(let earlier)? = context.finishing { return .finishInstruction(.report(earlier)) }
        if let hit { return .finishInstruction(.report(hit)) }
        if context.finishing != nil || context.singleStepping { return .finishInstruction(.step) }
        return .reenter
    }

    private static func finished(_ finishing: ExitContext.Finishing, _ context: ExitContext) -> ExitAction.Next {
        switch finishing {
        case .report(let stop): return .stop(stop)
        case .step: return stepEnded(context)
        }
    }

    /// One instruction ran under single-step.
    private static func stepEnded(_ context: ExitContext) -> ExitAction.Next {
        if context.untrappedStep || context.watchByStepping { return .checkWatchStep }
        if context.steppingOver { return .steppedOver }
        return .stop(.stepped)
    }
}

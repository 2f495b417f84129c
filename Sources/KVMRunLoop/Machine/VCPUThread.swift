import CKVM
import Foundation
import Glibc

public enum RunMode: Sendable, Equatable {
    case run
    case step
    /// One instruction with the watch traps lifted (every other vCPU parked), checked against
    /// the watches: the watchpoint fallback.
    case untrappedStep
    /// gdb's range step (`vCont;r`): step once, then on while RIP stays in [start, end), run
    /// as single steps and runs to the range's exits (see `RangeStepper`).
    case rangeStep(start: UInt64, end: UInt64)

    /// Single-stepping of some kind: a halted vCPU may still be stepped.
    public var isStep: Bool {
        switch self {
        case .step, .untrappedStep, .rangeStep: true
        case .run: false
        }
    }
}

/// What a resumed vCPU is to do, and the guest-debug setup to do it with.
struct RunPlan: Sendable {
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

/// One vCPU's thread and the only owner of its backend: every ioctl on the vCPU is issued
/// here. Parked until the controller posts an order (run with a plan, a job on the vCPU's
/// state, finish); while running it can be asked to pause or to report whether it is halted.
/// The run loop has one KVM_RUN call site and hands each exit to `ExitHandler`.
final class VCPUThread<Backend: VCPUBackend>: @unchecked Sendable {
    // SAFETY (Sendable): every mutable field is guarded by `cond`; the backend is only used by
    // the thread itself, except the atomic `requestImmediateExit` of a kick.
    enum State: Equatable { case parked, running, finished }

    private enum Order {
        case run(RunPlan)
        case job(Job)
        case finish
    }

    /// A closure run on the vCPU thread while the caller waits for it.
    private final class Job: @unchecked Sendable {
        // SAFETY (Sendable): `body` runs once, on the vCPU thread, while the caller blocks in
        // `perform` until `done` (guarded by the thread's `cond`) turns true.
        let body: (Backend) -> Void
        var done = false
        init(_ body: @escaping (Backend) -> Void) { self.body = body }
    }

    let backend: Backend
    var index: Int { backend.index }
    fileprivate let environment: any ExitEnvironment
    private let statistics: ExitStatistics?
    /// Where a finished run's stop goes (the StopQueue), called before the thread parks.
    private let post: @Sendable (Int, VCPUStop) -> Void
    /// Called after `post`, with the thread's lock released (see `main`).
    private let wake: @Sendable () -> Void
    private let cond = NSCondition()
    private var state = State.parked
    private var order: Order?
    private var pauseRequested = false
    /// When the current run first entered the guest (nil until it has): a pause that arrives
    /// before that lets the vCPU run one quantum first (see `requestPause`).
    private var enteredAt: UInt64?
    /// A pause is requested but its kick waits until the vCPU has had its quantum.
    private var kickDeferred = false
    private var probeRequested = false
    private var probeAnswer: Bool?
    private var thread: pthread_t?
    /// regs/sregs as the vCPU parked with them (read from kvm_run's sync area, so free): what
    /// stop replies, breakpoint translation and memory packets need, without a handoff.
    private var parkedRegisters: ExitRegisters?
    /// Kicks: how many times a signal was sent (for tests and statistics).
    private(set) var kicks = 0

    /// A stop longer than this is one the guest is told about (`notifyGuestPaused`) before it
    /// runs again: Linux's soft-lockup watchdog fires after 20 s by default, and a resume after
    /// a short stop (a step, a breakpoint hit) should cost no extra ioctl.
    let longStopNanoseconds: UInt64
    /// When the vCPU parked after its last run (uptime ns); 0 before it first ran.
    private var parkedSince: UInt64 = 0

    init(backend: Backend, environment: any ExitEnvironment, statistics: ExitStatistics?,
         longStopNanoseconds: UInt64 = 1_000_000_000,
         post: @escaping @Sendable (Int, VCPUStop) -> Void, wake: @escaping @Sendable () -> Void = {}) {
        self.longStopNanoseconds = longStopNanoseconds
        self.backend = backend
        self.environment = environment
        self.statistics = statistics
        self.post = post
        self.wake = wake
    }

    // MARK: controller side

    func start() {
        var tid = pthread_t()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setstacksize(&attributes, 1 << 20)
        let context = Unmanaged.passRetained(ThreadBody { [self] in self.main() }).toOpaque()
        let created = pthread_create(&tid, &attributes, { raw in
            // SAFETY: `raw` is the ThreadBody retained below; it is released here, once.
            Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, context)
        pthread_attr_destroy(&attributes)
        precondition(created == 0, "cannot start the thread of vCPU \(index): errno \(created)")
        cond.lock()
        thread = tid
        cond.unlock()
    }

    var currentState: State {
        cond.lock()
        defer { cond.unlock() }
        return state
    }

    var isParked: Bool { currentState == .parked }

    /// The registers the vCPU parked with (nil while it runs).
    var registers: ExitRegisters? {
        cond.lock()
        defer { cond.unlock() }
        return state == .parked ? parkedRegisters : nil
    }

    /// Starts a run; its stop is posted when it ends. The vCPU must be parked.
    func resume(_ plan: RunPlan) {
        cond.lock()
        precondition(state == .parked, "vCPU \(index) resumed while \(state)")
        order = .run(plan)
        state = .running
        pauseRequested = false
        kickDeferred = false
        enteredAt = nil
        cond.unlock()
        // Woken under the lock, the vCPU thread would only block on it (two more futex calls
        // and another wake-up in every step): the order is in place, so wake it after.
        cond.broadcast()
    }

    /// Asks a running vCPU to park: it leaves KVM_RUN (immediate_exit covers the window
    /// before it enters, the signal the time inside) and posts `.interrupted`, or its own stop
    /// if it had one.
    ///
    /// Every vCPU that is resumed gets to run: with more vCPUs than host CPUs, the one the host
    /// happens to schedule first would otherwise hit every breakpoint while the others are
    /// paused before they ever entered the guest. So unless `immediately`, a vCPU that has not
    /// entered the guest since its resume is not kicked yet: `completePause` kicks it once it
    /// has run for `quantum`.
    func requestPause(immediately: Bool = true) {
        cond.lock()
        defer { cond.unlock() }
        guard state == .running else { return }
        if pauseRequested && !kickDeferred { return }
        pauseRequested = true
        if immediately || enteredAt != nil {
            kickDeferred = false
            kickLocked()
        } else {
            kickDeferred = true
        }
    }

    /// Finishes a pause whose kick was deferred: waits (at most `patience` seconds) until the
    /// vCPU has entered the guest, lets it run for `quantum` nanoseconds, then kicks it.
    func completePause(quantum: UInt64, patience: Double = 0.05) {
        cond.lock()
        defer { cond.unlock() }
        guard state == .running, kickDeferred else { return }
        let deadline = Date().addingTimeInterval(patience)
        while state == .running && enteredAt == nil {
            if !cond.wait(until: deadline) { break }
        }
        if state == .running, let entered = enteredAt {
            let now = DispatchTime.now().uptimeNanoseconds
            if now < entered + quantum {
                cond.unlock()
                usleep(UInt32((entered + quantum - now) / 1000))
                cond.lock()
            }
        }
        if state == .running && kickDeferred {
            kickDeferred = false
            kickLocked()
        }
    }

    func waitUntilParked() {
        cond.lock()
        while state == .running { cond.wait() }
        cond.unlock()
    }

    /// With an in-kernel irqchip HLT never leaves KVM, so the controller asks now and then:
    /// the vCPU is kicked, looks at its own mp_state and IF, and runs on. Returns nil if the
    /// vCPU is not running (its status is known) or did not answer within a second (it only
    /// fails to when its thread is descheduled that long).
    func probeHalted() -> Bool? {
        cond.lock()
        defer { cond.unlock() }
        guard state == .running else { return nil }
        probeRequested = true
        probeAnswer = nil
        kickLocked()
        let deadline = Date().addingTimeInterval(1)
        while probeAnswer == nil && state == .running {
            if !cond.wait(until: deadline) { break }
        }
        return probeAnswer
    }

    /// Runs `body` on the vCPU thread (the only one that issues its ioctls) and waits for it.
    /// The vCPU must be parked.
    func perform<T, E: Error>(_ body: (Backend) throws(E) -> T) throws(E) -> T {
        var result: Result<T, E>?
        withoutActuallyEscaping(body) { body in
            // SAFETY: `perform` blocks until the job is done, so `body` and `result` outlive
            // their use on the vCPU thread, and nothing else touches them meanwhile.
            nonisolated(unsafe) let unsafeBody = body
            nonisolated(unsafe) var slot: Result<T, E>? = nil
            let job = Job { backend in
                do throws(E) { slot = .success(try unsafeBody(backend)) } catch { slot = .failure(error) }
            }
            cond.lock()
            precondition(state == .parked, "vCPU \(index) asked for a job while \(state)")
            order = .job(job)
            cond.broadcast()
            while !job.done { cond.wait() }
            cond.unlock()
            result = slot
        }
        return try result!.get()
    }

    /// Parks the vCPU if it runs, ends its thread and joins it.
    func finish() {
        requestPause(immediately: true)
        waitUntilParked()
        cond.lock()
        let tid = thread
        if state == .parked {
            order = .finish
            cond.broadcast()
        }
        thread = nil
        cond.unlock()
        if let tid { pthread_join(tid, nil) }
    }

    private func kickLocked() {
        backend.requestImmediateExit()
        kicks += 1
        if let thread { pthread_kill(thread, ckvm_kick_signal()) }
    }

    // MARK: the thread

    private func main() {
        _ = ckvm_unblock_all_signals()
        let initial = snapshotRegisters()
        cond.lock()
        if parkedRegisters == nil { parkedRegisters = initial }
        while true {
            while order == nil { cond.wait() }
            let next = order!
            order = nil
            switch next {
            case .finish:
                state = .finished
                cond.broadcast()
                cond.unlock()
                return
            case .job(let job):
                cond.unlock()
                job.body(backend)
                let registers = snapshotRegisters()
                cond.lock()
                parkedRegisters = registers
                job.done = true
                cond.broadcast()
            case .run(let plan):
                cond.unlock()
                if parkedSince != 0, DispatchTime.now().uptimeNanoseconds - parkedSince >= longStopNanoseconds {
                    // EINVAL until the guest enables kvmclock: nothing to tell it then.
                    try? backend.notifyGuestPaused()
                }
                let stop = runUntilStop(plan)
                parkedSince = DispatchTime.now().uptimeNanoseconds
                let registers = snapshotRegisters()
                cond.lock()
                parkedRegisters = registers
                // Posted before the state turns parked, under the same lock: whoever waits for
                // the park (pauseAll) then finds the stop already queued.
                post(index, stop)
                state = .parked
                pauseRequested = false
                kickDeferred = false
                probeRequested = false
                cond.broadcast()
                // The controller's wake-up comes after the lock is released: woken under it
                // (often on this CPU, preempting us) it would only block on the lock, and
                // two more context switches and futex calls were in every stop.
                cond.unlock()
                wake()
                cond.lock()
            }
        }
    }

    private func snapshotRegisters() -> ExitRegisters? {
        guard let regs = try? backend.getRegs(), let sregs = try? backend.getSregs() else { return nil }
        return ExitRegisters(regs: regs, sregs: sregs)
    }

    /// What the controller asked for since the last look: a pause ends the run (once the run
    /// has entered the guest: see `requestPause`), a probe is answered and the run goes on.
    /// Also notes the entry into the guest that follows.
    private func takeRequests() -> VCPUStop? {
        cond.lock()
        let pause = pauseRequested && enteredAt != nil
        let probe = probeRequested
        probeRequested = false
        if !pause && enteredAt == nil {
            enteredAt = DispatchTime.now().uptimeNanoseconds
            cond.broadcast()
        }
        cond.unlock()
        if probe { answerProbe() }
        return pause ? .interrupted : nil
    }

    private func answerProbe() {
        var halted = false
        if let state = try? backend.getMPState(), let regs = try? backend.getRegs() {
            let waiting = state == UInt32(KVM_MP_STATE_UNINITIALIZED) || state == UInt32(KVM_MP_STATE_INIT_RECEIVED)
            halted = waiting || (state == UInt32(KVM_MP_STATE_HALTED) && regs.rflags & (1 << 9) == 0)
        }
        cond.lock()
        probeAnswer = halted
        cond.broadcast()
        cond.unlock()
    }

    private func debugFlags(_ plan: RunPlan, stepping: Bool, hardware: Bool) -> UInt32 {
        var flags = plan.debugFlags
        if !hardware { flags &= ~UInt32(KVM_GUESTDBG_USE_HW_BP) }
        if stepping {
            flags |= UInt32(KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP)
            if plan.blockIRQ { flags |= UInt32(KVM_GUESTDBG_BLOCKIRQ) }
        }
        if flags & ~UInt32(KVM_GUESTDBG_ENABLE) == 0 { flags = 0 }
        return flags
    }

    private func applyGuestDebug(_ plan: RunPlan, _ context: ExitContext) throws(SystemError) {
        try backend.setGuestDebug(flags: debugFlags(plan, stepping: context.singleStepping,
                                                    hardware: !context.steppingOver && !context.untrappedStep),
                                  debugRegs: plan.debugRegs)
    }

    private func runUntilStop(_ plan: RunPlan) -> VCPUStop {
        do {
            if case .rangeStep(let start, let end) = plan.mode { return try runRange(plan, start: start, end: end) }
            return try runLoop(plan)
        } catch {
            return .crash(Crash(.internalError, "vCPU \(index): \(error)"))
        }
    }

    /// One piece of a range step: an ordinary run or step.
    fileprivate func runPiece(_ plan: RunPlan) throws(SystemError) -> VCPUStop { try runLoop(plan) }

    private func runLoop(_ plan: RunPlan) throws(SystemError) -> VCPUStop {
        var context = ExitContext(mode: plan.mode == .untrappedStep ? .step : plan.mode,
                                  untrappedStep: plan.mode == .untrappedStep,
                                  watchByStepping: plan.watchByStepping && plan.mode != .untrappedStep)
        // Stepping past a hardware breakpoint we sit on: one quiet step with the slots disarmed.
        if !plan.hardwareBreakpoints.isEmpty, plan.mode != .untrappedStep {
            let regs = try backend.getRegs()
            let sregs = try backend.getSregs()
            context.steppingOver = plan.hardwareBreakpoints.contains(sregs.cs.base &+ regs.rip)
        }
        try applyGuestDebug(plan, context)
        var snapshot: WatchStepSnapshot?
        while true {
            if context.finishing == nil, let stop = takeRequests() { return stop }
            if (context.untrappedStep || context.watchByStepping) && snapshot == nil {
                snapshot = environment.watchStepSnapshot(regs: try backend.getRegs(), sregs: try backend.getSregs(),
                                                         allWatches: context.untrappedStep)
            }
            let started = statistics == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            let exit = try backend.run()
            statistics?.record(vcpu: index, exit: exit, nanoseconds: DispatchTime.now().uptimeNanoseconds &- started)
            let backend = self.backend
            let action = ExitHandler.handle(exit, context: context, environment: environment) {
                guard let regs = try? backend.getRegs(), let sregs = try? backend.getSregs() else { return nil }
                return ExitRegisters(regs: regs, sregs: sregs)
            }
            switch action.completion {
            case .none: break
            case .ioRead(let bytes): backend.completeIORead(bytes)
            case .mmioRead(let value): backend.completeMMIORead(value)
            }
            switch action.next {
            case .reenter, .mailbox:
                continue
            case .finishInstruction(let finishing):
                context.finishing = finishing
                backend.requestImmediateExit()
            case .stop(let stop):
                // A breakpoint whose condition is false (or a dprintf): step past it with the
                // debug registers disarmed, as at a resume, and run on; nobody else hears of it.
                if context.mode == .run, !context.steppingOver,
                   BreakpointAgents.runsOn(stop, backend: backend, environment: environment) {
                    context.steppingOver = true
                    try applyGuestDebug(plan, context)
                    continue
                }
                return stop
            case .deliverGuestBreakpoint(let advanceRIP):
                try backend.deliverGuestBreakpoint(advanceRIP: advanceRIP)
            case .completeFWait:
                try backend.completeFWait()
            case .finishFWaitStep:
                try backend.completeFWait()
                return .stepped
            case .steppedOver:
                context.finishing = nil
                context.steppingOver = false
                if context.mode == .step { return .stepped }
                try applyGuestDebug(plan, context)
            case .checkWatchStep:
                context.finishing = nil
                if let taken = snapshot, let hit = environment.watchStepHit(taken, regs: try backend.getRegs()) {
                    return hit
                }
                snapshot = nil
                if context.steppingOver {
                    context.steppingOver = false
                    try applyGuestDebug(plan, context)
                }
                if context.mode == .step { return .stepped }
            }
        }
    }
}

extension VCPUThread {
    /// A range step as pieces of plain runs: single steps, and runs with execution breakpoints
    /// at the range's exits in the debug registers gdb leaves free. Every piece starts by
    /// looking at the mailbox, so a pause (Ctrl-C, another vCPU's stop) ends it like any run.
    fileprivate func runRange(_ plan: RunPlan, start: UInt64, end: UInt64) throws(SystemError) -> VCPUStop {
        var stepper = RangeStepper(start: start, end: end, debugRegs: plan.debugRegs, stepOnly: plan.watchByStepping)
        var stop: VCPUStop?
        while true {
            let regs = try backend.getRegs(), sregs = try backend.getSregs()
            let mode: DecodeMode = sregs.cs.l != 0 ? .long64 : (sregs.cs.db != 0 ? .protected32 : .real16)
            let paging = PagingState(cr0: sregs.cr0, cr3: sregs.cr3, cr4: sregs.cr4, efer: sregs.efer)
            let environment = self.environment
            var piece = plan
            switch stepper.next(after: stop, rip: regs.rip, csBase: sregs.cs.base, mode: mode,
                                code: { environment.codeBytes(atLinear: $0, count: $1, paging: paging) }) {
            case .report(let result):
                return result
            case .step:
                piece.mode = .step
            case .run(let addresses):
                piece.mode = .run
                let (debugRegs, slots) = DebugRegisterAllocation.arming(addresses, in: plan.debugRegs)
                piece.debugRegs = debugRegs
                stepper.rangeSlots = Set(slots)
                piece.debugFlags |= UInt32(KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP)
                // As while stepping, no interrupt handler runs in the middle of the line.
                if plan.blockIRQ { piece.debugFlags |= UInt32(KVM_GUESTDBG_BLOCKIRQ) }
            }
            stop = try runPiece(piece)
        }
    }
}

/// What a pthread runs: a C function pointer cannot capture, so the closure travels as its argument.
private final class ThreadBody: @unchecked Sendable {
    // SAFETY (Sendable): created by the starting thread and only run by the new one.
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

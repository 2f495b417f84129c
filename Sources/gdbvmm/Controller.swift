import Foundation
import Glibc
import KVMRunLoop
import RSP

/// The controller: one thread that waits on the gdb connection and on vCPU stops together,
/// owns the RSP session, and decides when the VM ends and with which status.
final class Controller {
    let machine: Machine
    let options: Options
    let listener: Listener?
    var connection: Connection?
    var session: Session?
    /// The vCPU gdb last heard about; Ctrl-C reports it, breakpoints translate through it.
    var currentVCPU = 0
    /// Set when the process should end with this status.
    var finalStatus: Int32?
    var interruptRequested = false
    /// A stop decided without running anything (a pending stop, a crashed vCPU resumed).
    var syntheticStop: StopEvent?
    /// Stops gdb has not heard of yet, one per vCPU (all-stop, as gdbserver keeps them).
    var stopBook: StopAggregator
    /// What gdb's last resume ran, for running on after the watchpoint fallback's step.
    var lastPlan: [Int: RunMode] = [:]
    /// vCPUs reported stopped on one of gdb's int3s reached through another address
    /// (Machine.aliasedBreakpoint): gdb does not know to step past those, so the next resume does.
    var stoppedOnAliasedInt3: Set<Int> = []
    /// After `D`, or with no gdb at all: the guest runs on its own and its end ends gdbvmm.
    var running = false
    /// Register state read since the vCPUs stopped: gdb asks for the same registers several
    /// times per stop (expedited in the stop reply, then `g`, `p`), and each read is 2 ioctls.
    var registerCache: [Int: CachedRegisters] = [:]
    /// The guest CPU's register sets (from its CPUID), read on first use: see KVMTarget.
    var registerSourcesRead: RegisterSources?
    /// The VMM's own time per request, stop and KVM_RUN (`monitor info timing`).
    var timing = VMMTiming()
    /// Standard input feeds the guest's serial port while it is the console (until its end).
    var consoleInput: Int32?
    /// QEMU's single-step flags (`Qqemu.sstep`): QEMU's default, ENABLE | NOIRQ.
    var qemuStepFlags: UInt32 = QEMUStepFlags.enable | QEMUStepFlags.noIRQ
    /// When `--timeout` ends the VM (monotonic nanoseconds).
    var timeoutDeadline: UInt64?
    /// The `monitor xp` format and unit size, remembered between commands as QEMU does.
    var dumpFormat = DumpFormat()

    /// The guest's console, for `monitor info exits` (bytes dropped when its reader lags).
    let console: BufferedSink?

    init(machine: Machine, options: Options, console: BufferedSink? = nil) throws(TransportError) {
        self.machine = machine
        self.console = console
        self.options = options
        stopBook = StopAggregator(vcpuCount: machine.vcpuCount)
        timeoutDeadline = options.timeout.map { monotonicNow() + UInt64($0 * 1e9) }
        consoleInput = options.serial == .stdio && options.gdb != .stdio ? 0 : nil
        if let endpoint = options.gdb, endpoint != .stdio {
            listener = try Listener(endpoint)
        } else {
            listener = nil
        }
    }

    /// How long the controller polls without sleeping while a gdb is attached.
    static let spinNanoseconds: UInt64 = 200_000

    /// gdb takes an x86-64 description only with x86-64 symbols: a 32-bit ELF guest gets the
    /// i386 view of the same registers (as qemu-system-i386 would serve it).
    var architecture: TargetArchitecture {
        let image = machine.configuration.image
        let isELF32 = image.count > 4 && image[0] == 0x7F && image[1] == 0x45 && image[2] == 0x4C
            && image[3] == 0x46 && image[4] == 1
        return isELF32 ? .i386 : .x86_64
    }

    // MARK: what the event loop asks of the VM

    /// Readable when a vCPU has posted a stop: the event loop then calls `handleStops`.
    var stopEventFD: Int32 { machine.stops.eventFD }

    /// With the in-kernel irqchip HLT never reaches us: while the guest runs on its own or for
    /// gdb, the event loop wakes every 200 ms and calls `probeForAllHalted`.
    var wantsHaltProbe: Bool {
        machine.hasIRQChip && !machine.allParked && (session == nil || session?.isRunning == true)
    }

    func probeForAllHalted() {
        if machine.probeAllHalted() { allHaltedWhileRunning() }
    }

    /// Parks every vCPU (a gdb arrives, or left while the guest ran); what they were doing is
    /// absorbed as if no gdb were attached.
    func pauseEverything() {
        guard !machine.allParked else { return }
        machine.pauseAll()
        for (vcpu, stop) in machine.stops.drain() { absorbWhileDetached(vcpu: vcpu, stop: stop) }
    }

    /// The stop a newly attached gdb is told about: a crashed vCPU if there is one.
    func stopForNewSession() -> StopEvent {
        if let crashed = machine.status.firstIndex(where: { if case .crashed = $0 { return true }; return false }),
           case .crashed(let crash) = machine.status[crashed] {
            currentVCPU = crashed
            return .stopped(thread: crashed + 1, signal: signal(for: crash), reason: .none)
        }
        return .stopped(thread: currentVCPU + 1, signal: GDBSignal.sigtrap, reason: .none)
    }

    // MARK: resuming

    /// Runs every runnable vCPU with no debugger watching (no gdb, or after `D`).
    func resumeFreely() {
        running = true
        registerCache.removeAll()
        var plan: [Int: RunMode] = [:]
        for i in 0..<machine.vcpuCount where machine.isParked(i) {
            switch machine.status[i] {
            case .runnable, .waitingForSIPI: plan[i] = .run
            case .halted, .crashed: break
            }
        }
        if plan.isEmpty {
            finalStatus = machine.status.contains(where: { if case .crashed = $0 { return true }; return false }) ? 4 : 0
            return
        }
        do {
            try machine.resume(plan, order: stopBook.resumeOrder(plan.keys))
        } catch {
            FileHandle.standardError.write(Data("gdbvmm: \(error)\n".utf8))
            finalStatus = 4
        }
    }

    /// A resume gdb asked for; stops come back through `handleStops`.
    func resumeForGDB(_ plan: [Int: RunMode]) throws(TargetError) {
        // A stop that happened while another was reported comes first, and nothing runs
        // (gdbserver's rule) unless gdb removed the breakpoint it was for.
        stopBook.revalidate { machine.breakpointStillThere($1, vcpu: $0) }
        if let (vcpu, stop) = stopBook.takeNext(among: Set(plan.keys)) {
            currentVCPU = vcpu
            syntheticStop = event(for: stop, vcpu: vcpu)
            return
        }
        var runnable: [Int: RunMode] = [:]
        for (vcpu, mode) in plan {
            switch machine.status[vcpu] {
            case .crashed(let crash):
                // A crashed vCPU stays crashed: report it again rather than run it.
                currentVCPU = vcpu
                syntheticStop = .stopped(thread: vcpu + 1, signal: signal(for: crash), reason: .none)
                return
            case .halted:
                if mode.isStep { runnable[vcpu] = mode }
            case .runnable, .waitingForSIPI:
                runnable[vcpu] = mode
            }
        }
        if runnable.isEmpty {
            if allHalted { syntheticStop = .exited(status: 0); return }
            let vcpu = plan.keys.min() ?? currentVCPU
            syntheticStop = .stopped(thread: vcpu + 1, signal: GDBSignal.sigtrap, reason: .none)
            return
        }
        let aliased = stoppedOnAliasedInt3
        stoppedOnAliasedInt3 = []
        for vcpu in aliased.sorted() {
            // gdb does not know that this int3 is there (see aliasedBreakpoint), so it did not
            // step past it: that is done here, or the vCPU would stop on it again at once.
            guard let mode = runnable[vcpu], machine.aliasedBreakpoint(vcpu: vcpu) != nil else { continue }
            registerCache.removeAll()
            let stop: VCPUStop
            do {
                stop = try machine.stepPastInt3(vcpu)
            } catch {
                throw .message("vCPU \(vcpu): stepping past a breakpoint: \(error)")
            }
            machine.note(stop, vcpu: vcpu)
            if mode.isStep || stop != .stepped {
                currentVCPU = vcpu
                syntheticStop = event(for: stop, vcpu: vcpu)
                return
            }
        }
        if let stepping = runnable.first(where: { $0.value.isStep }) { currentVCPU = stepping.key }
        registerCache.removeAll()
        lastPlan = runnable
        do {
            try machine.resume(runnable, order: stopBook.resumeOrder(runnable.keys))
        } catch {
            throw .message("\(error)")
        }
    }

    func requestInterrupt() {
        interruptRequested = true
        machine.pauseAll()
    }

    func kill() {
        let crashed = machine.status.contains(where: { if case .crashed = $0 { return true }; return false })
        if session?.isExtended == true {
            resetMachine()
            return
        }
        finalStatus = crashed ? 4 : 0
    }

    /// `monitor quit`: end the VM and gdbvmm, extended-remote or not.
    func quitVM() {
        let crashed = machine.status.contains(where: { if case .crashed = $0 { return true }; return false })
        finalStatus = crashed ? 4 : 0
    }

    /// Back to the image's entry state (extended-remote `run`/`kill`, `monitor system_reset`):
    /// nothing from before the reset is pending any more.
    @discardableResult
    func resetMachine() -> MachineError? {
        registerCache.removeAll()
        stopBook.discardAll()
        stoppedOnAliasedInt3 = []
        do {
            try machine.reset()
            return nil
        } catch {
            return error
        }
    }

    func detach() {
        stopBook.discardAll()
        try? machine.removeAllBreakpoints()
        resumeFreely()
    }
}

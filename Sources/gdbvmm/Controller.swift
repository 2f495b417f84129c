import Foundation
import Glibc
import KVMRunLoop
import RSP

/// The controller: one thread that waits on the gdb connection and on vCPU stops together,
/// owns the RSP session, and decides when the VM ends and with which status.
final class Controller {
    let machine: Machine
    let options: Options
    private let listener: Listener?
    private var connection: Connection?
    private(set) var session: Session?
    /// The vCPU gdb last heard about; Ctrl-C reports it, breakpoints translate through it.
    var currentVCPU = 0
    /// Set when the process should end with this status.
    private var finalStatus: Int32?
    private var interruptRequested = false
    /// A stop decided without running anything (e.g. resuming a crashed vCPU).
    private var syntheticStop: StopEvent?
    /// After `D`, or with no gdb at all: the guest runs on its own and its end ends gdbvmm.
    private var running = false
    /// Register state read since the vCPUs stopped: gdb asks for the same registers several
    /// times per stop (expedited in the stop reply, then `g`, `p`), and each read is 2 ioctls.
    var registerCache: [Int: CachedRegisters] = [:]

    init(machine: Machine, options: Options) throws(TransportError) {
        self.machine = machine
        self.options = options
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

    func run() -> Int32 {
        if let listener {
            FileHandle.standardError.write(Data("gdbvmm: waiting for gdb on \(listener.endpoint)\n".utf8))
        }
        if options.gdb == .stdio {
            attach(Connection(readFD: 0, writeFD: 1, ownsFDs: false))
        } else if !options.waitForGDB {
            resumeFreely()
        }
        while finalStatus == nil {
            waitAndDispatch()
        }
        if session != nil, let connection { connection.close() }
        return finalStatus ?? 0
    }

    // MARK: the event loop

    private func waitAndDispatch() {
        var fds = [pollfd(fd: machine.stops.eventFD, events: Int16(POLLIN), revents: 0)]
        if let listener { fds.append(pollfd(fd: listener.fd, events: Int16(POLLIN), revents: 0)) }
        if let connection { fds.append(pollfd(fd: connection.readFD, events: Int16(POLLIN), revents: 0)) }
        // With the in-kernel irqchip HLT never reaches us: look for an all-halted guest now and then.
        let probing = machine.hasIRQChip && !machine.allParked && (session == nil || session?.isRunning == true)
        // gdb sends its next packet within tens of microseconds of our reply, and sleeping in
        // poll costs a wake-up that is expensive on a nested host: spin briefly first.
        var n: Int32 = 0
        if session != nil {
            let spinUntil = DispatchTime.now().uptimeNanoseconds + Controller.spinNanoseconds
            repeat {
                n = poll(&fds, nfds_t(fds.count), 0)
            } while n == 0 && DispatchTime.now().uptimeNanoseconds < spinUntil
        }
        if n == 0 { n = poll(&fds, nfds_t(fds.count), probing ? 200 : -1) }
        if n < 0 { return }
        if n == 0 {
            if probing && machine.probeAllHalted() { allHaltedWhileRunning() }
            return
        }
        if fds[0].revents != 0 { handleStops() }
        if finalStatus != nil { return }
        var i = 1
        if let listener {
            if fds[i].revents != 0, let fd = listener.acceptDescriptor() {
                // The current gdb may have gone already, with its last bytes still unread:
                // finish with it before deciding that the newcomer is a second gdb.
                drainConnection()
                if session != nil {
                    // One gdb at a time; the first session is untouched.
                    refuseConnection(fd, message: "gdbvmm is already serving another gdb; detach that one first")
                } else {
                    attach(Connection(readFD: fd, writeFD: fd, ownsFDs: true))
                }
            }
            i += 1
        }
        if let connection, i < fds.count, fds[i].revents != 0, connection.readFD == fds[i].fd {
            if let bytes = connection.receive() {
                feed(bytes)
            } else {
                disconnected()
            }
        }
    }

    /// Reads and handles whatever the current connection has pending, down to its end if it
    /// has closed.
    private func drainConnection() {
        while let connection {
            var pfd = pollfd(fd: connection.readFD, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 0) > 0 else { return }
            if let bytes = connection.receive() {
                feed(bytes)
            } else {
                disconnected()
            }
        }
    }

    /// A gdb arrived: stop the guest (all-stop) and start a session on the stopped state.
    private func attach(_ incoming: Connection) {
        connection = incoming
        registerCache.removeAll()
        running = false
        if !machine.allParked {
            machine.pauseAll()
            for (vcpu, stop) in machine.stops.drain() { absorbWhileDetached(vcpu: vcpu, stop: stop) }
            if finalStatus != nil { return }
        }
        var initial = StopEvent.stopped(thread: currentVCPU + 1, signal: GDBSignal.sigtrap, reason: .none)
        if let crashed = machine.status.firstIndex(where: { if case .crashed = $0 { return true }; return false }),
           case .crashed(let crash) = machine.status[crashed] {
            currentVCPU = crashed
            initial = .stopped(thread: crashed + 1, signal: signal(for: crash), reason: .none)
        }
        session = Session(target: self, initialStop: initial, architecture: architecture)
    }

    private func feed(_ bytes: [UInt8]) {
        guard let session, let connection else { return }
        let reply = session.receive(bytes)
        if !reply.isEmpty && !connection.send(reply) { disconnected(); return }
        if let stop = syntheticStop {
            syntheticStop = nil
            deliver(stop)
        }
        if session.isClosed { sessionEnded() }
    }

    private func deliver(_ event: StopEvent) {
        guard let session, let connection else { return }
        let bytes = session.targetStopped(event)
        if !bytes.isEmpty && !connection.send(bytes) { disconnected(); return }
        if session.isClosed { sessionEnded() }
    }

    /// The session is over by protocol (`D`, `k`, `W`): act on what ended it.
    private func sessionEnded() {
        connection?.close()
        connection = nil
        session = nil
        if options.gdb == .stdio && !running && finalStatus == nil {
            // Nobody can attach to stdio again: a session that ended without detach ends the VM.
            finalStatus = 0
        }
    }

    /// gdb went away without detaching: remove its breakpoints and keep the VM paused for the
    /// next gdb (or end the VM when gdb was our stdio and cannot come back).
    private func disconnected() {
        let wasRunning = session?.isRunning ?? false
        connection?.close()
        connection = nil
        session = nil
        if wasRunning {
            machine.pauseAll()
            for (vcpu, stop) in machine.stops.drain() { absorbWhileDetached(vcpu: vcpu, stop: stop) }
        }
        try? machine.removeAllBreakpoints()
        if options.gdb == .stdio && finalStatus == nil { finalStatus = 0 }
    }

    // MARK: stops

    private func handleStops() {
        let stops = machine.stops.drain()
        if stops.isEmpty { return }
        guard let session, session.isRunning else {
            for (vcpu, stop) in stops { absorbWhileDetached(vcpu: vcpu, stop: stop) }
            return
        }
        for (vcpu, stop) in stops { machine.note(stop, vcpu: vcpu) }
        // A halted vCPU alone is not news for gdb while others still run.
        let reportable = stops.filter { $0.stop != .halted && $0.stop != .interrupted }
        if reportable.isEmpty && !interruptRequested {
            if allHalted { finishAttached(status: 0) }
            return
        }
        // All-stop: everyone parks before gdb hears of the stop.
        machine.pauseAll()
        var all = stops + machine.stops.drain()
        for (vcpu, stop) in all.dropFirst(stops.count) { machine.note(stop, vcpu: vcpu) }
        all = all.filter { $0.stop != .interrupted && $0.stop != .halted }
        if let exit = all.first(where: { if case .exit = $0.stop { return true }; return false }),
           case .exit(let status) = exit.stop {
            finishAttached(status: status)
            return
        }
        let chosen = all.first(where: { if case .crash = $0.stop { return true }; return false }) ?? all.first
        interruptRequested = false
        guard let (vcpu, stop) = chosen else {
            if allHalted { finishAttached(status: 0); return }
            deliver(.stopped(thread: currentVCPU + 1, signal: GDBSignal.sigint, reason: .none))
            return
        }
        currentVCPU = vcpu
        deliver(event(for: stop, vcpu: vcpu))
    }

    /// Every vCPU sits in HLT with interrupts off: the guest is done (status 0).
    private func allHaltedWhileRunning() {
        machine.pauseAll()
        _ = machine.stops.drain()
        if session != nil { finishAttached(status: 0) } else { finalStatus = 0 }
    }

    private var allHalted: Bool {
        machine.status.contains(.halted)
            && machine.status.allSatisfy { $0 == .halted || $0 == .waitingForSIPI }
    }

    func event(for stop: VCPUStop, vcpu: Int) -> StopEvent {
        let thread = vcpu + 1
        switch stop {
        case .softwareBreakpoint: return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: .softwareBreakpoint)
        case .hardwareBreakpoint: return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: .hardwareBreakpoint)
        case .stepped, .guestDebugTrap, .halted: return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: .none)
        case .watchpoint(let kind, let address):
            switch kind {
            case .write: return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: .watch(address: address))
            case .read: return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: .readWatch(address: address))
            case .access: return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: .accessWatch(address: address))
            }
        case .interrupted: return .stopped(thread: thread, signal: GDBSignal.sigint, reason: .none)
        case .exit(let status): return .exited(status: UInt8(truncatingIfNeeded: status))
        case .crash(let crash):
            reportCrash(crash, vcpu: vcpu)
            return .stopped(thread: thread, signal: signal(for: crash), reason: .none)
        }
    }

    func signal(for crash: Crash) -> UInt8 {
        crash.kind == .emulationFailure ? GDBSignal.sigill : GDBSignal.sigsegv
    }

    private func finishAttached(status: Int32) {
        guard let session else { finalStatus = status; return }
        deliver(.exited(status: UInt8(truncatingIfNeeded: status)))
        if !session.isExtended {
            finalStatus = status & 0xFF
        } else {
            // extended-remote keeps the server for the next `run`.
            registerCache.removeAll()
            try? machine.reset()
        }
    }

    /// Stops that arrive with no gdb to tell (free running, or collected while attaching).
    private func absorbWhileDetached(vcpu: Int, stop: VCPUStop) {
        machine.note(stop, vcpu: vcpu)
        switch stop {
        case .exit(let status):
            finalStatus = status & 0xFF
        case .crash(let crash):
            reportCrash(crash, vcpu: vcpu)
            if session == nil && connection == nil && (listener == nil || running) { finalStatus = 4 }
        case .halted:
            if allHalted { finalStatus = 0 }
        case .interrupted:
            break
        case .softwareBreakpoint, .hardwareBreakpoint, .stepped, .watchpoint, .guestDebugTrap:
            // A leftover from a session that just ended: carry on if we are running freely.
            if running { try? machine.resume([vcpu: .run]) }
        }
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
            try machine.resume(plan)
        } catch {
            FileHandle.standardError.write(Data("gdbvmm: \(error)\n".utf8))
            finalStatus = 4
        }
    }

    /// A resume gdb asked for; stops come back through `handleStops`.
    func resumeForGDB(_ plan: [Int: RunMode]) throws(TargetError) {
        var runnable: [Int: RunMode] = [:]
        for (vcpu, mode) in plan {
            switch machine.status[vcpu] {
            case .crashed(let crash):
                // A crashed vCPU stays crashed: report it again rather than run it.
                currentVCPU = vcpu
                syntheticStop = .stopped(thread: vcpu + 1, signal: signal(for: crash), reason: .none)
                return
            case .halted:
                if mode == .step { runnable[vcpu] = .step }
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
        if let stepping = runnable.first(where: { $0.value == .step }) { currentVCPU = stepping.key }
        registerCache.removeAll()
        do {
            try machine.resume(runnable)
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
            registerCache.removeAll()
            try? machine.reset()
            return
        }
        finalStatus = crashed ? 4 : 0
    }

    /// `monitor quit`: end the VM and gdbvmm, extended-remote or not.
    func quitVM() {
        let crashed = machine.status.contains(where: { if case .crashed = $0 { return true }; return false })
        finalStatus = crashed ? 4 : 0
    }

    func detach() {
        try? machine.removeAllBreakpoints()
        resumeFreely()
    }

    // MARK: crash reports

    func reportCrash(_ crash: Crash, vcpu: Int) {
        var text = "gdbvmm: guest crashed on vCPU \(vcpu): \(crash)\n"
        if let state = try? CPUState(vcpu: machine.vcpu(vcpu)) {
            text += registerDump(state)
        }
        FileHandle.standardError.write(Data(text.utf8))
    }
}

func hex(_ value: UInt64, width: Int = 16) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, width - digits.count)) + digits
}

/// The vCPU registers a crash report shows: enough to find the faulting code without gdb.
func registerDump(_ s: CPUState) -> String {
    let r = s.regs
    let rows: [(String, UInt64)] = [
        ("rax", r.rax), ("rbx", r.rbx), ("rcx", r.rcx), ("rdx", r.rdx),
        ("rsi", r.rsi), ("rdi", r.rdi), ("rbp", r.rbp), ("rsp", r.rsp),
        ("r8", r.r8), ("r9", r.r9), ("r10", r.r10), ("r11", r.r11),
        ("r12", r.r12), ("r13", r.r13), ("r14", r.r14), ("r15", r.r15),
        ("rip", r.rip), ("rflags", r.rflags),
        ("cr0", s.sregs.cr0), ("cr2", s.sregs.cr2), ("cr3", s.sregs.cr3), ("cr4", s.sregs.cr4),
        ("efer", s.sregs.efer),
    ]
    var text = ""
    for (i, (name, value)) in rows.enumerated() {
        text += name.padding(toLength: 7, withPad: " ", startingAt: 0) + hex(value)
        text += i % 4 == 3 || i == rows.count - 1 ? "\n" : "   "
    }
    let cs = s.sregs.cs
    text += "cs     sel 0x\(String(cs.selector, radix: 16)) base \(hex(cs.base)) \(cs.l != 0 ? "64-bit" : cs.db != 0 ? "32-bit" : "16-bit")"
    text += "   gdt \(hex(s.sregs.gdt.base)) limit 0x\(String(s.sregs.gdt.limit, radix: 16))"
    text += "   idt \(hex(s.sregs.idt.base)) limit 0x\(String(s.sregs.idt.limit, radix: 16))\n"
    return text
}

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
    /// A stop decided without running anything (e.g. resuming a crashed vCPU).
    var syntheticStop: StopEvent?
    /// After `D`, or with no gdb at all: the guest runs on its own and its end ends gdbvmm.
    var running = false
    /// Register state read since the vCPUs stopped: gdb asks for the same registers several
    /// times per stop (expedited in the stop reply, then `g`, `p`), and each read is 2 ioctls.
    var registerCache: [Int: CachedRegisters] = [:]
    /// Standard input feeds the guest's serial port while it is the console (until its end).
    var consoleInput: Int32?

    init(machine: Machine, options: Options) throws(TransportError) {
        self.machine = machine
        self.options = options
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
        // A terminal is read only while gdbvmm is in its foreground (`gdbvmm -s -S k &` is a
        // QEMU habit): reading from the background would stop us with SIGTTIN.
        if let consoleInput, isatty(consoleInput) == 0 || tcgetpgrp(consoleInput) == getpgrp() {
            fds.append(pollfd(fd: consoleInput, events: Int16(POLLIN), revents: 0))
        }
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
        if let connection, i < fds.count, connection.readFD == fds[i].fd {
            if fds[i].revents != 0 {
                if let bytes = connection.receive() {
                    feed(bytes)
                } else {
                    disconnected()
                }
            }
            i += 1
        }
        if let consoleInput, i < fds.count, fds[i].fd == consoleInput, fds[i].revents != 0 {
            var buffer = [UInt8](repeating: 0, count: 4096)
            // SAFETY: read(2) writes at most count bytes into the buffer.
            let n = buffer.withUnsafeMutableBytes { read(consoleInput, $0.baseAddress, $0.count) }
            if n > 0 {
                machine.serialInput(Array(buffer[0..<n]))
            } else if n == 0 || errno != EINTR {
                self.consoleInput = nil
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

    func deliver(_ event: StopEvent) {
        guard let session, let connection else { return }
        let bytes = session.targetStopped(event)
        if !bytes.isEmpty && !connection.send(bytes) { disconnected(); return }
        if session.isClosed { sessionEnded() }
    }

    /// The session is over by protocol (`D`, `k`, `W`): act on what ended it.
    func sessionEnded() {
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
}

import Foundation
import Glibc
import KVMRunLoop
import RSP

/// The controller's event loop: the gdb connection, the listener, refused clients, console
/// input, termination signals and vCPU stops, waited on together in one poll(2).
///
/// Nothing in it blocks on a client: sockets are non-blocking, input is read only when there is
/// some, output is queued and written as the peer takes it. So no client can hold up a stop
/// reply, the guest's exit, or the refusal of another client.
extension Controller {
    func run() -> Int32 {
        if let listener {
            // Tests and scripts read this first line of stderr for the endpoint: keep it first.
            FileHandle.standardError.write(Data("gdbvmm: waiting for gdb on \(listener.endpoint)\n".utf8))
            if let warning = listener.exposureWarning { FileHandle.standardError.write(Data("\(warning)\n".utf8)) }
        }
        if options.gdb == .stdio {
            attach(Connection(readFD: 0, writeFD: 1, ownsFDs: false))
        } else if !options.waitForGDB {
            resumeFreely()
        }
        while finalStatus == nil {
            waitAndDispatch()
        }
        shutDown()
        return finalStatus ?? 0
    }

    /// How long the last replies get at exit, for a gdb that is slow to read them; one that does
    /// not read at all must not keep gdbvmm from ending.
    static let exitFlushNanoseconds: UInt64 = 1_000_000_000

    /// Stops listening (removing a Unix socket file), then gives the last replies a short while
    /// to go out.
    private func shutDown() {
        let deadline = monotonicNow() + Controller.exitFlushNanoseconds
        listener?.close()
        connection?.flush(until: deadline)
        connection?.close()
        listener?.farewells.closeAll(flushingUntil: deadline)
    }

    // MARK: the event loop

    private enum Source {
        case stops, signals, connection, newcomer, listener, console
        case farewell(Int)
    }

    private func waitAndDispatch() {
        var fds: [pollfd] = []
        var sources: [Source] = []
        func watch(_ fd: Int32, _ events: Int32, _ source: Source) {
            fds.append(pollfd(fd: fd, events: Int16(events), revents: 0))
            sources.append(source)
        }
        watch(stopEventFD, POLLIN, .stops)
        if TerminationSignals.fd >= 0 { watch(TerminationSignals.fd, POLLIN, .signals) }
        if let connection {
            let output = connection.pendingOutput > 0 ? POLLOUT : 0
            if connection.writeFD == connection.readFD {
                watch(connection.readFD, POLLIN | output, .connection)
            } else {
                watch(connection.readFD, POLLIN, .connection)
                if output != 0 { watch(connection.writeFD, output, .connection) }
            }
        }
        if let listener {
            if let newcomer = listener.newcomer { watch(newcomer.readFD, POLLIN, .newcomer) }
            watch(listener.fd, POLLIN, .listener)
            for (id, pfd) in listener.farewells.pollRequests { watch(pfd.fd, Int32(pfd.events), .farewell(id)) }
        }
        // A terminal is read only while gdbvmm is in its foreground (`gdbvmm -s -S k &` is a
        // QEMU habit): reading from the background would stop us with SIGTTIN.
        if let consoleInput, isatty(consoleInput) == 0 || tcgetpgrp(consoleInput) == getpgrp() {
            watch(consoleInput, POLLIN, .console)
        }

        // With the in-kernel irqchip HLT never reaches us: look for an all-halted guest now and then.
        let probing = wantsHaltProbe
        var timeout: Int32 = probing ? 200 : -1
        if let deadline = listener?.farewells.nextDeadline {
            let now = monotonicNow()
            let untilDeadline = deadline > now ? Int32(min((deadline - now) / 1_000_000 + 1, 60_000)) : 0
            timeout = timeout < 0 ? untilDeadline : min(timeout, untilDeadline)
        }
        if let untilTimeout = timeoutMilliseconds { timeout = timeout < 0 ? untilTimeout : min(timeout, untilTimeout) }
        // gdb sends its next packet within tens of microseconds of our reply, and sleeping in
        // poll costs a wake-up that is expensive on a nested host: spin briefly first.
        var n: Int32 = 0
        if session != nil {
            let spinUntil = DispatchTime.now().uptimeNanoseconds + Controller.spinNanoseconds
            repeat {
                n = poll(&fds, nfds_t(fds.count), 0)
                // On a busy host, the CPU this spin holds is the one gdb needs to send that
                // packet: give it up at once when another thread wants it.
                if n == 0 { sched_yield() }
            } while n == 0 && DispatchTime.now().uptimeNanoseconds < spinUntil
        }
        if n == 0 { n = poll(&fds, nfds_t(fds.count), timeout) }
        checkTimeout()
        if finalStatus != nil || n < 0 { return }
        if n == 0 {
            if probing { probeForAllHalted() }
            listener?.farewells.expire()
            return
        }

        func revents(_ wanted: (Source) -> Bool) -> Int16 {
            zip(fds, sources).reduce(Int16(0)) { wanted($1.1) ? $0 | $1.0.revents : $0 }
        }
        if revents({ if case .stops = $0 { return true }; return false }) != 0 {
            let started = monotonicNow()
            handleStops()
            timing.stop(from: started)
        }
        if finalStatus != nil { return }
        if revents({ if case .signals = $0 { return true }; return false }) != 0, let number = TerminationSignals.received() {
            finalStatus = 128 + number
            return
        }
        let listenerReady = revents({ if case .listener = $0 { return true }; return false }) != 0
        let connectionEvents = revents({ if case .connection = $0 { return true }; return false })
        if connectionEvents & Int16(POLLOUT | POLLERR) != 0, let connection, !connection.flush() {
            disconnected()
        }
        // Input before newcomers: the current gdb may have sent its last bytes (a detach) and
        // left just before the next one connected, and then the newcomer is the next gdb, not
        // a second one. Read it until it has nothing more (its end, if it left), within a
        // bound. Reading never blocks, so an empty socket costs nothing.
        if listenerReady {
            readConnection(draining: true)
        } else if connectionEvents != 0 {
            readConnection()
        }
        if finalStatus != nil { return }
        if revents({ if case .newcomer = $0 { return true }; return false }) != 0 { admitNewcomer() }
        if finalStatus != nil { return }
        if listenerReady { acceptNewcomers() }
        if revents({ if case .console = $0 { return true }; return false }) != 0, let consoleInput {
            var buffer = [UInt8](repeating: 0, count: 4096)
            // SAFETY: read(2) writes at most count bytes into the buffer.
            let n = buffer.withUnsafeMutableBytes { read(consoleInput, $0.baseAddress, $0.count) }
            if n > 0 {
                machine.serialInput(Array(buffer[0..<n]))
            } else if n == 0 || errno != EINTR {
                self.consoleInput = nil
            }
        }
        if let farewells = listener?.farewells {
            for (pfd, source) in zip(fds, sources) {
                if case .farewell(let id) = source { farewells.handle(id: id, revents: pfd.revents) }
            }
            farewells.expire()
        }
    }

    /// Handles what the current connection has sent, down to its end if it has closed: up to
    /// 16 reads per wake-up, so that a flood cannot starve the rest of the loop, and none after
    /// a read that did not fill the buffer (poll says when there is more: the read that would
    /// only say "nothing yet" was one more syscall in every packet exchange); `draining`: until
    /// there is nothing more to read, up to 16 MiB.
    private func readConnection(draining: Bool = false) {
        var consumed = 0
        for reads in 0... {
            guard let connection, draining ? consumed < 16 << 20 : reads < 16 else { return }
            let started = monotonicNow()
            switch connection.receive() {
            case .bytes(let bytes):
                consumed += bytes.count
                let replied = feed(bytes)
                timing.exchange(from: started, replied: replied)
                if !draining && bytes.count < Connection.readSize { return }
            case .none: return
            case .closed: disconnected(); return
            }
            if finalStatus != nil { return }
        }
    }

    /// The client accepted while nobody was attached has sent something (it is a gdb, not a
    /// probe): it becomes the session. If it left without a word, nothing happened.
    private func admitNewcomer() {
        guard let listener, let newcomer = listener.newcomer else { return }
        var byte: UInt8 = 0
        let peeked = recv(newcomer.readFD, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
        if peeked < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return }
        listener.newcomer = nil
        guard peeked > 0 else { newcomer.close(); return }
        attach(newcomer)
        if finalStatus == nil { readConnection() }
    }

    private func acceptNewcomers() {
        guard let listener else { return }
        for _ in 0..<Listener.backlog {
            guard let fd = listener.acceptDescriptor() else { return }
            if session == nil && listener.newcomer == nil {
                listener.newcomer = Connection(readFD: fd, writeFD: fd, ownsFDs: true)
            } else {
                // One gdb at a time; the first session is untouched.
                listener.farewells.refuse(fd, message: "gdbvmm is already serving another gdb; detach that one first")
            }
        }
    }

    /// A gdb arrived: stop the guest (all-stop) and start a session on the stopped state.
    func attach(_ incoming: Connection) {
        connection = incoming
        registerCache.removeAll()
        running = false
        pauseEverything()
        if finalStatus != nil { return }
        session = Session(target: self, initialStop: stopForNewSession(), architecture: architecture,
                          extensions: registerSources.extensions)
    }

    /// Returns whether the bytes produced a reply (for `timing`).
    @discardableResult
    private func feed(_ bytes: [UInt8]) -> Bool {
        guard let session, connection != nil else { return false }
        let reply = session.receive(bytes)
        if !reply.isEmpty && !transmit(reply) { return true }
        if let stop = syntheticStop {
            syntheticStop = nil
            deliver(stop)
        }
        if self.session === session && session.isClosed { sessionEnded() }
        return !reply.isEmpty
    }

    func deliver(_ event: StopEvent) {
        guard let session, connection != nil else { return }
        let bytes = session.targetStopped(event)
        if !bytes.isEmpty && !transmit(bytes) { return }
        if session.isClosed { sessionEnded() }
    }

    /// Queues bytes for gdb; false (and the session is over) if gdb went away or stopped reading.
    private func transmit(_ bytes: [UInt8]) -> Bool {
        guard let connection else { return false }
        if connection.send(bytes) { return true }
        if connection.overflowed {
            FileHandle.standardError.write(Data("""
                gdbvmm: gdb left more than \(Connection.outputLimit >> 20) MiB of replies unread: \
                dropped its connection as if it had gone away\n
                """.utf8))
        }
        disconnected()
        return false
    }

    /// The session is over by protocol (`D`, `k`, `W`): act on what ended it.
    func sessionEnded() {
        if let connection { retire(connection) }
        connection = nil
        session = nil
        if options.gdb == .stdio && !running && finalStatus == nil {
            // Nobody can attach to stdio again: a session that ended without detach ends the VM.
            finalStatus = 0
        }
    }

    /// Closes a finished session's connection once its last reply is out, without waiting on
    /// it here: a socket that has not taken everything yet goes to the listener's farewells.
    private func retire(_ connection: Connection) {
        if connection.pendingOutput > 0 {
            if let listener, let (fd, unsent) = connection.handOver() {
                listener.farewells.finish(fd, unsent: unsent)
                return
            }
            // stdio: gdb is our parent and reads, or gdbvmm is about to end anyway.
            connection.flush(until: monotonicNow() + Controller.exitFlushNanoseconds)
        }
        connection.close()
    }

    /// gdb went away without detaching: remove its breakpoints and keep the VM paused for the
    /// next gdb (or end the VM when gdb was our stdio and cannot come back).
    func disconnected() {
        let wasRunning = session?.isRunning ?? false
        connection?.close()
        connection = nil
        session = nil
        if wasRunning { pauseEverything() }
        try? machine.removeAllBreakpoints()
        if options.gdb == .stdio && finalStatus == nil { finalStatus = 0 }
    }
}

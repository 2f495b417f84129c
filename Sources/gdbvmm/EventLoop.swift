import Foundation
import Glibc
import KVMRunLoop
import RSP

/// The controller's event loop: the gdb connection, the listener, console input and vCPU stops,
/// waited on together in one poll(2).
extension Controller {
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
        var fds = [pollfd(fd: stopEventFD, events: Int16(POLLIN), revents: 0)]
        if let listener { fds.append(pollfd(fd: listener.fd, events: Int16(POLLIN), revents: 0)) }
        if let connection { fds.append(pollfd(fd: connection.readFD, events: Int16(POLLIN), revents: 0)) }
        // A terminal is read only while gdbvmm is in its foreground (`gdbvmm -s -S k &` is a
        // QEMU habit): reading from the background would stop us with SIGTTIN.
        if let consoleInput, isatty(consoleInput) == 0 || tcgetpgrp(consoleInput) == getpgrp() {
            fds.append(pollfd(fd: consoleInput, events: Int16(POLLIN), revents: 0))
        }
        // With the in-kernel irqchip HLT never reaches us: look for an all-halted guest now and then.
        let probing = wantsHaltProbe
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
            if probing { probeForAllHalted() }
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
    func attach(_ incoming: Connection) {
        connection = incoming
        registerCache.removeAll()
        running = false
        pauseEverything()
        if finalStatus != nil { return }
        session = Session(target: self, initialStop: stopForNewSession(), architecture: architecture)
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

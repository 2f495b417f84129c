import Glibc

/// Sockets being closed politely, inside the event loop (no thread, no blocking call): gdbs
/// turned away because another one is attached, and finished sessions whose last reply (the
/// `W` of an exit, the `OK` of a detach) the peer has not taken yet.
///
/// A refused gdb is answered only after its first packet, with an `E.` reply it prints, and
/// the socket is shut down for writing and drained before it is closed: closing with unread
/// data would reset the connection, and gdb would only say "Connection reset by peer".
/// Every step has a deadline, and at most `limit` farewells are in flight: a flood of clients
/// costs a bounded amount and cannot starve the attached gdb, stop replies or the guest's exit.
final class Farewells {
    static let limit = 16
    /// How long a refused client has to send its first packet, and how long any farewell has
    /// to take its reply and then close its end.
    static let stepNanoseconds: UInt64 = 2_000_000_000
    /// A first packet longer than this is not waited for to its end.
    static let firstPacketLimit = 65536

    private enum Phase {
        /// Reading the refused client's first packet; `afterHash` counts the bytes seen after
        /// its `#` (two checksum digits end it).
        case awaitingPacket(received: Int, afterHash: Int?)
        /// Writing `output`; then shut down for writing.
        case replying
        /// Reading and discarding until the peer closes its end.
        case draining
    }

    private struct Farewell {
        let id: Int
        let fd: Int32
        var phase: Phase
        var output: [UInt8]
        var deadline: UInt64
    }

    private var farewells: [Farewell] = []
    private var nextID = 0
    /// Scratch space for the bytes read and discarded.
    private var buffer = [UInt8](repeating: 0, count: 65536)

    var isEmpty: Bool { farewells.isEmpty }

    deinit {
        for farewell in farewells { close(farewell.fd) }
    }

    /// Takes a newly accepted socket to turn away with `message`.
    func refuse(_ fd: Int32, message: String) {
        let payload = Array("E.\(message)".utf8)
        let sum = payload.reduce(UInt8(0)) { $0 &+ $1 }
        // The `+` acknowledges the packet we wait for (gdb starts with acknowledgements on).
        let reply = Array("+$".utf8) + payload + Array("#".utf8) + Array(hex2(sum).utf8)
        add(fd, phase: .awaitingPacket(received: 0, afterHash: nil), output: reply)
    }

    /// Takes the socket of a finished session to send `unsent` and close.
    func finish(_ fd: Int32, unsent: [UInt8]) {
        add(fd, phase: .replying, output: unsent)
    }

    private func add(_ fd: Int32, phase: Phase, output: [UInt8]) {
        // Beyond the limit the oldest goes without a word: it has had the most time.
        while farewells.count >= Farewells.limit {
            close(farewells.removeFirst().fd)
        }
        farewells.append(Farewell(id: nextID, fd: fd, phase: phase, output: output,
                                  deadline: monotonicNow() + Farewells.stepNanoseconds))
        nextID += 1
        // The first packet may be here already (it came with the connection).
        step(farewells.count - 1, readable: true, writable: true)
    }

    /// What to poll for, tagged with the ids `handle` takes back.
    var pollRequests: [(id: Int, pfd: pollfd)] {
        farewells.map { farewell in
            var events = Int32(POLLIN)
            if case .replying = farewell.phase { events |= Int32(POLLOUT) }
            return (farewell.id, pollfd(fd: farewell.fd, events: Int16(events), revents: 0))
        }
    }

    /// The earliest deadline, for the poll timeout.
    var nextDeadline: UInt64? { farewells.map(\.deadline).min() }

    /// Acts on what poll said about farewell `id`.
    func handle(id: Int, revents: Int16) {
        guard revents != 0, let index = farewells.firstIndex(where: { $0.id == id }) else { return }
        let events = Int32(revents)
        let failed = events & Int32(POLLERR | POLLNVAL) != 0
        step(index, readable: events & Int32(POLLIN | POLLHUP) != 0 || failed, writable: events & Int32(POLLOUT) != 0 || failed)
    }

    /// Moves farewells whose deadline has passed to their next step.
    func expire(now: UInt64 = monotonicNow()) {
        var index = 0
        while index < farewells.count {
            guard farewells[index].deadline <= now else { index += 1; continue }
            switch farewells[index].phase {
            case .awaitingPacket:
                // Not gdb, or a slow one: answer anyway.
                startReply(index)
                index += 1
            case .replying, .draining:
                close(farewells.remove(at: index).fd)
            }
        }
    }

    /// At exit: a last try, until `deadline`, to hand each refused client its refusal (without
    /// waiting for its packet) and each finished session its last reply; then closes everything.
    func closeAll(flushingUntil deadline: UInt64) {
        for index in farewells.indices.reversed() {
            if case .awaitingPacket = farewells[index].phase { startReply(index) }
        }
        while true {
            let replying = pollRequests.filter { $0.pfd.events & Int16(POLLOUT) != 0 }
            let now = monotonicNow()
            guard !replying.isEmpty, now < deadline else { break }
            var fds = replying.map { pollfd(fd: $0.pfd.fd, events: Int16(POLLOUT), revents: 0) }
            if poll(&fds, nfds_t(fds.count), Int32(min((deadline - now) / 1_000_000 + 1, 1000))) < 0 && errno != EINTR { break }
            for (request, pfd) in zip(replying, fds) { handle(id: request.id, revents: pfd.revents) }
        }
        // What they sent meanwhile is read first: closing with unread data would reset the
        // connection, and the peer could lose the reply.
        for index in farewells.indices.reversed() where discardInput(index) { close(farewells[index].fd) }
        farewells.removeAll()
    }

    // MARK: the steps

    private func step(_ index: Int, readable: Bool, writable: Bool) {
        switch farewells[index].phase {
        case .awaitingPacket(var received, var afterHash):
            guard readable else { return }
            let fd = farewells[index].fd
            // SAFETY: readNow writes at most buffer.count bytes into the buffer.
            let outcome = buffer.withUnsafeMutableBytes { readNow(fd, into: $0, socket: true) }
            switch outcome {
            case .wouldBlock:
                return
            case .closed:
                close(farewells.remove(at: index).fd)
                return
            case .transferred(let n):
                received += n
                // In RSP the first `#` ends the packet (a `#` in the payload is escaped).
                for byte in buffer[0..<n] {
                    if let count = afterHash { afterHash = count + 1 } else if byte == UInt8(ascii: "#") { afterHash = 0 }
                }
                if (afterHash ?? 0) >= 2 || received >= Farewells.firstPacketLimit {
                    startReply(index)
                } else {
                    farewells[index].phase = .awaitingPacket(received: received, afterHash: afterHash)
                }
            }
        case .replying:
            if readable && !discardInput(index) { return }
            if writable { writeReply(index) }
        case .draining:
            if readable { _ = discardInput(index) }
        }
    }

    private func startReply(_ index: Int) {
        farewells[index].phase = .replying
        farewells[index].deadline = monotonicNow() + Farewells.stepNanoseconds
        writeReply(index)
    }

    private func writeReply(_ index: Int) {
        let fd = farewells[index].fd
        while !farewells[index].output.isEmpty {
            // SAFETY: writeNow only reads the output buffer, within its count.
            let outcome = farewells[index].output.withUnsafeBytes { writeNow(fd, $0, socket: true) }
            switch outcome {
            case .transferred(let n): farewells[index].output.removeFirst(n)
            case .wouldBlock: return
            case .closed: close(farewells.remove(at: index).fd); return
            }
        }
        shutdown(fd, Int32(SHUT_WR))
        farewells[index].phase = .draining
        farewells[index].deadline = monotonicNow() + Farewells.stepNanoseconds
    }

    /// Reads (a bounded amount) and throws it away; closes at the peer's end of stream and
    /// then returns false (the farewell is gone).
    private func discardInput(_ index: Int) -> Bool {
        let fd = farewells[index].fd
        for _ in 0..<4 {
            // SAFETY: readNow writes at most buffer.count bytes into the buffer.
            let outcome = buffer.withUnsafeMutableBytes { readNow(fd, into: $0, socket: true) }
            switch outcome {
            case .transferred: continue
            case .wouldBlock: return true
            case .closed: close(farewells.remove(at: index).fd); return false
            }
        }
        return true
    }
}

/// Two lowercase hex digits, as RSP checksums are written.
private func hex2(_ value: UInt8) -> String {
    let digits = Array("0123456789abcdef".utf8)
    return String(decoding: [digits[Int(value >> 4)], digits[Int(value & 0xF)]], as: UTF8.self)
}

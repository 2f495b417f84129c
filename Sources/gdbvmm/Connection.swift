import Foundation
import Glibc

/// A gdb connection: a socket, or stdin/stdout for `target remote | gdbvmm --gdb stdio`.
///
/// Nothing here blocks: input is read when there is some, and replies go into a queue that is
/// written as the peer takes it (the event loop polls for POLLOUT while it is not empty). A peer
/// that stops reading cannot stall the controller; one that leaves more than `outputLimit`
/// unread is given up on (`send` returns false and `overflowed` is set).
///
/// Accepted sockets are non-blocking. The stdio descriptors are left as they are: O_NONBLOCK
/// belongs to the open file, which gdb (or a shell) may share with us, and setting it would make
/// the parent's own reads and writes fail with EAGAIN. What gdb hands us is a socketpair, which
/// takes MSG_DONTWAIT per call; a pipe is read and written only when poll(2) says it is ready
/// (see `readNow` and `writeNow`).
final class Connection {
    let readFD: Int32
    let writeFD: Int32
    private let ownsFDs: Bool
    private let readIsSocket: Bool
    private let writeIsSocket: Bool

    /// A real gdb has at most a few replies outstanding (128 KiB each at most): this much
    /// unread output means the peer is not reading at all.
    static let outputLimit = 8 << 20

    init(readFD: Int32, writeFD: Int32, ownsFDs: Bool) {
        self.readFD = readFD
        self.writeFD = writeFD
        self.ownsFDs = ownsFDs
        readIsSocket = isSocket(readFD)
        writeIsSocket = writeFD == readFD ? readIsSocket : isSocket(writeFD)
    }

    deinit { close() }

    private var closed = false
    /// The most one `receive` returns.
    static let readSize = 65536
    /// Reused for every read: a packet exchange should not allocate 64 KiB each time.
    private var buffer = [UInt8](repeating: 0, count: Connection.readSize)
    /// Output not yet taken by the peer: `output[outputStart...]`.
    private var output: [UInt8] = []
    private var outputStart = 0
    /// Set when `send` gave up because the peer left more than `outputLimit` unread.
    private(set) var overflowed = false

    var pendingOutput: Int { output.count - outputStart }

    func close() {
        guard !closed else { return }
        closed = true
        guard ownsFDs else { return }
        Glibc.close(readFD)
        if writeFD != readFD { Glibc.close(writeFD) }
    }

    enum Input: Equatable {
        case bytes([UInt8])
        /// Nothing to read now.
        case none
        /// End of stream, or an error: the peer went away.
        case closed
    }

    /// What is available now, without waiting.
    func receive() -> Input {
        // SAFETY: readNow writes at most buffer.count bytes into the buffer.
        let outcome = buffer.withUnsafeMutableBytes { readNow(readFD, into: $0, socket: readIsSocket) }
        switch outcome {
        case .transferred(let n): return .bytes(Array(buffer[0..<n]))
        case .wouldBlock: return .none
        case .closed: return .closed
        }
    }

    /// Queues `bytes` and writes what the peer takes now; false if the peer went away or has
    /// left more than `outputLimit` unread (then `overflowed` is set).
    func send(_ bytes: [UInt8]) -> Bool {
        // Nothing queued: share the reply's storage instead of copying 128 KiB.
        if pendingOutput == 0 {
            output = bytes
            outputStart = 0
        } else {
            output += bytes
        }
        guard flush() else { return false }
        if pendingOutput > Connection.outputLimit {
            overflowed = true
            return false
        }
        return true
    }

    /// Writes queued output until the peer takes no more; false if the peer went away.
    func flush() -> Bool {
        while outputStart < output.count {
            // SAFETY: outputStart < output.count, so the slice is inside the buffer; writeNow
            // only reads it.
            let outcome = output.withUnsafeBytes {
                writeNow(writeFD, UnsafeRawBufferPointer(rebasing: $0[outputStart...]), socket: writeIsSocket)
            }
            switch outcome {
            case .transferred(let n): outputStart += n
            case .wouldBlock: compact(); return true
            case .closed: return false
            }
        }
        output.removeAll(keepingCapacity: output.count <= 65536)
        outputStart = 0
        return true
    }

    /// Best effort for a connection about to be closed: flushes until everything is out, the
    /// peer is gone, or `deadline` (monotonic nanoseconds) passes.
    func flush(until deadline: UInt64) {
        while pendingOutput > 0, flush(), pendingOutput > 0 {
            let now = monotonicNow()
            guard now < deadline else { return }
            var pfd = pollfd(fd: writeFD, events: Int16(POLLOUT), revents: 0)
            _ = poll(&pfd, 1, Int32(min((deadline - now) / 1_000_000 + 1, 1000)))
        }
    }

    /// Gives up the socket and its unsent output to someone who will finish sending it (the
    /// listener's farewells); this connection is closed without closing the descriptor.
    func handOver() -> (fd: Int32, unsent: [UInt8])? {
        guard ownsFDs, readFD == writeFD, !closed else { return nil }
        closed = true
        return (readFD, Array(output[outputStart...]))
    }

    /// Drops what has been sent once it is a large part of the buffer, so a long-lived queue
    /// does not keep growing.
    private func compact() {
        if outputStart > 65536 && outputStart * 2 > output.count {
            output.removeFirst(outputStart)
            outputStart = 0
        }
    }
}

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// write(2) under another name: inside `FileDescriptorSink.write(_:)` the bare name would
/// resolve to the method.
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    write(fd, buffer, count)
}

/// Where a console device's output goes (stdout, a file, a socket, a test buffer).
public protocol ByteSink: Sendable {
    /// Writes every byte or, if the destination is gone, drops them: a guest's console output
    /// must never stop the guest.
    func write(_ bytes: [UInt8])
}

/// A sink writing to a file descriptor it does not own (the caller closes it).
public final class FileDescriptorSink: ByteSink, @unchecked Sendable {
    // SAFETY (Sendable): `droppedCount` and `error` are guarded by `lock`; the descriptor is
    // immutable.
    /// Not closed by the sink.
    public let fileDescriptor: Int32
    private let lock = NSLock()
    private var droppedCount: UInt64 = 0
    private var error: Int32?

    public init(fileDescriptor: Int32) { self.fileDescriptor = fileDescriptor }

    /// Bytes given up because the destination failed (EPIPE, EIO, EBADF).
    public var dropped: UInt64 {
        lock.lock()
        defer { lock.unlock() }
        return droppedCount
    }

    /// The errno of the last write that failed, nil while every write succeeded.
    public var lastError: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return error
    }

    /// Writes all bytes, retrying after EINTR and partial writes and waiting when a
    /// non-blocking descriptor is full (EAGAIN). Other errors (EPIPE, EIO) drop the rest, which
    /// `dropped` and `lastError` report.
    public func write(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            // SAFETY: the buffer pointer is valid for bytes.count bytes during the closure and
            // write(2) reads at most bytes.count - offset bytes from offset on.
            let written = bytes.withUnsafeBufferPointer { buffer in
                systemWrite(fileDescriptor, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
            }
            if written > 0 {
                offset += written
                continue
            }
            let failure = errno
            if written < 0 && failure == EINTR { continue }
            if written < 0 && (failure == EAGAIN || failure == EWOULDBLOCK) {
                var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLOUT), revents: 0)
                _ = poll(&descriptor, 1, -1)
                continue
            }
            lock.lock()
            droppedCount &+= UInt64(bytes.count - offset)
            if written < 0 { error = failure }
            lock.unlock()
            return
        }
    }
}

/// Console output that never blocks a vCPU: bytes go into a bounded buffer (at most twice
/// `capacity` with the chunk being written) that a writer thread
/// of its own drains into the destination. When the destination stops taking bytes (a pipe
/// nobody reads) and the buffer is full, new bytes are dropped and counted (`monitor info
/// exits` shows the count): a vCPU must stay kickable, so it never waits for a reader.
public final class BufferedSink: ByteSink, @unchecked Sendable {
    // SAFETY (Sendable): `buffer`, `writing`, `written` and `droppedCount` are guarded
    // by `cond`.
    public static let defaultCapacity = 4 << 20

    private let destination: any ByteSink
    private let capacity: Int
    private let cond = NSCondition()
    private var buffer: [UInt8] = []
    private var writing = false
    /// Bytes the destination has taken, to tell a slow reader from one that never reads.
    private var written: UInt64 = 0
    private var droppedCount: UInt64 = 0

    public init(_ destination: any ByteSink, capacity: Int = BufferedSink.defaultCapacity) {
        self.destination = destination
        self.capacity = capacity
        let writer = Thread { [self] in drain() }
        writer.name = "serial writer"
        writer.start()
    }

    public func write(_ bytes: [UInt8]) {
        cond.lock()
        defer { cond.unlock() }
        let room = max(0, capacity - buffer.count)
        if room < bytes.count { droppedCount &+= UInt64(bytes.count - room) }
        buffer += bytes.prefix(room)
        cond.signal()
    }

    /// Bytes dropped because the destination did not keep up.
    public var dropped: UInt64 {
        cond.lock()
        defer { cond.unlock() }
        return droppedCount
    }

    /// Waits until everything buffered has been written, giving up once `timeout` seconds
    /// pass without progress (a reader that never reads must not keep gdbvmm from exiting).
    public func flush(timeout: Double) {
        cond.lock()
        defer { cond.unlock() }
        var progress = written
        var deadline = Date().addingTimeInterval(timeout)
        while !buffer.isEmpty || writing {
            if cond.wait(until: deadline) { continue }
            if written == progress { return }
            progress = written
            deadline = Date().addingTimeInterval(timeout)
        }
    }

    private func drain() {
        cond.lock()
        while true {
            while buffer.isEmpty { cond.wait() }
            let chunk = buffer
            buffer.removeAll(keepingCapacity: true)
            writing = true
            cond.unlock()
            destination.write(chunk)
            cond.lock()
            writing = false
            written &+= UInt64(chunk.count)
            cond.broadcast()
        }
    }
}

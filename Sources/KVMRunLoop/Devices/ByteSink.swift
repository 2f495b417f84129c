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
public final class FileDescriptorSink: ByteSink {
    /// Not closed by the sink.
    public let fileDescriptor: Int32

    public init(fileDescriptor: Int32) { self.fileDescriptor = fileDescriptor }

    /// Writes all bytes, retrying after EINTR and partial writes and waiting when a
    /// non-blocking descriptor is full (EAGAIN). Other errors (EPIPE, EIO) drop the rest.
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
            let error = errno
            if written < 0 && error == EINTR { continue }
            if written < 0 && (error == EAGAIN || error == EWOULDBLOCK) {
                var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLOUT), revents: 0)
                _ = poll(&descriptor, 1, -1)
                continue
            }
            return
        }
    }
}

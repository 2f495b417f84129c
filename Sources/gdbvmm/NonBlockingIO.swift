import Glibc

/// What one read or write that must not block did.
enum IOOutcome: Equatable {
    /// This many bytes (more than zero) moved.
    case transferred(Int)
    /// Nothing now; poll(2) says when to try again.
    case wouldBlock
    /// End of stream, or an error that means the peer is gone.
    case closed
}

/// True when `fd` is a socket: those take MSG_DONTWAIT, which makes one call non-blocking
/// without changing the open file (stdio may share it with our parent).
func isSocket(_ fd: Int32) -> Bool {
    var info = stat()
    return fstat(fd, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK
}

/// True when poll(2) says `fd` has `event` now (or an error or hang-up, which the read or write
/// then reports).
private func ready(_ fd: Int32, _ event: Int32) -> Bool {
    var pfd = pollfd(fd: fd, events: Int16(event), revents: 0)
    while true {
        let n = poll(&pfd, 1, 0)
        if n >= 0 { return n > 0 }
        if errno != EINTR { return true }
    }
}

/// One read that never blocks. A socket is read with MSG_DONTWAIT. Anything else (a pipe or a
/// terminal given as stdio) is read only when poll(2) says it is readable: we are its only
/// reader, so the read then returns at once.
func readNow(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, socket: Bool) -> IOOutcome {
    if !socket && !ready(fd, POLLIN) { return .wouldBlock }
    while true {
        let n = socket ? recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
                       : read(fd, buffer.baseAddress, buffer.count)
        if n > 0 { return .transferred(n) }
        if n == 0 { return .closed }
        switch errno {
        case EINTR: continue
        case EAGAIN, EWOULDBLOCK: return .wouldBlock
        default: return .closed
        }
    }
}

/// One write that never blocks. A socket is written with MSG_DONTWAIT (and MSG_NOSIGNAL: a
/// vanished peer is an error, not SIGPIPE). Anything else is written only when poll(2) says
/// writable, and at most PIPE_BUF (4096) bytes at a time: a pipe with room takes that much at once.
func writeNow(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, socket: Bool) -> IOOutcome {
    if !socket && !ready(fd, POLLOUT) { return .wouldBlock }
    while true {
        let n = socket ? send(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
                       : write(fd, bytes.baseAddress, min(bytes.count, 4096))
        if n > 0 { return .transferred(n) }
        if n == 0 { return .wouldBlock }
        switch errno {
        case EINTR: continue
        case EAGAIN, EWOULDBLOCK: return .wouldBlock
        default: return .closed
        }
    }
}

/// Monotonic time in nanoseconds, for deadlines.
func monotonicNow() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

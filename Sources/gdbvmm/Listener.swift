import Foundation
import Glibc

struct TransportError: Error, CustomStringConvertible {
    var description: String
}

private func errorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

/// A listening TCP or Unix socket, non-blocking (accept only after poll says so).
///
/// A Unix socket is created with mode 0600 whatever the umask (whoever connects controls the
/// guest), refuses to replace a live socket (another gdbvmm serves there), replaces a stale
/// one, and is removed by `close()` if it is still ours.
final class Listener {
    let fd: Int32
    /// The endpoint as a user would type it, with the real port.
    let endpoint: String
    /// For TCP on an address other than loopback: the warning to print.
    let exposureWarning: String?
    /// Refused clients and finished sessions being closed politely.
    let farewells = Farewells()
    /// A client accepted while no gdb is attached, that has sent nothing yet: it becomes the
    /// session at its first byte. Until then nothing is paused, so a probe that connects and
    /// leaves (another gdbvmm checking whether this socket is live, `nc -z`) changes nothing.
    var newcomer: Connection?
    private let unixSocket: (path: String, device: dev_t, inode: ino_t)?
    private var closed = false

    init(_ endpoint: Options.Endpoint) throws(TransportError) {
        switch endpoint {
        case let .tcp(host, port):
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { throw TransportError(description: "socket: \(errorText())") }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            let resolved = host == "localhost" ? "127.0.0.1" : host
            guard inet_pton(AF_INET, resolved, &address.sin_addr) == 1 else {
                Glibc.close(fd)
                throw TransportError(description: "invalid IPv4 address '\(host)' in --gdb")
            }
            // SAFETY: sockaddr_in starts with the sockaddr header bind(2) expects; the size is passed.
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0, listen(fd, Listener.backlog) == 0 else {
                let message = errorText()
                Glibc.close(fd)
                throw TransportError(description: "cannot listen on tcp:\(host):\(port): \(message); pick another port (tcp:0 picks a free one)")
            }
            var actual = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            // SAFETY: getsockname(2) writes at most `length` bytes into the sockaddr_in.
            _ = withUnsafeMutablePointer(to: &actual) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            self.fd = fd
            self.endpoint = "tcp:\(resolved):\(UInt16(bigEndian: actual.sin_port))"
            // 127.0.0.0/8 is loopback; anything else (0.0.0.0 above all) can be reached from outside.
            let isLoopback = UInt32(bigEndian: address.sin_addr.s_addr) >> 24 == 127
            exposureWarning = isLoopback ? nil : """
                gdbvmm: warning: serving gdb on \(resolved), which is not a loopback address: anyone \
                who can reach it controls the guest (memory, registers, and what it runs). Use \
                tcp:127.0.0.1:PORT or unix:PATH unless the network is yours alone.
                """
            unixSocket = nil
        case .unix(let path):
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let capacity = MemoryLayout.size(ofValue: address.sun_path)
            guard path.utf8.count < capacity else {
                throw TransportError(description: "unix socket path is too long (at most \(capacity - 1) bytes): \(path)")
            }
            // SAFETY: the path was checked to be shorter than sun_path, leaving its NUL terminator.
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
            }
            try Listener.removeStaleSocket(at: path, address: address)
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { throw TransportError(description: "socket: \(errorText())") }
            // bind(2) creates the socket file as 0777 less the umask, and fchmod on the socket
            // beforehand does not reach that file: set the umask around bind so that the file
            // is 0600 (only we can connect) from the first instant. (No other thread creates
            // files meanwhile.)
            let savedMask = umask(0o177)
            // SAFETY: sockaddr_un starts with the sockaddr header bind(2) expects; the size is passed.
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            let bindError = errno
            umask(savedMask)
            var info = stat()
            guard bound == 0, lstat(path, &info) == 0, listen(fd, Listener.backlog) == 0 else {
                let message = errorText(bound == 0 ? errno : bindError)
                Glibc.close(fd)
                if bound == 0 { unlink(path) }
                throw TransportError(description: "cannot listen on unix:\(path): \(message)")
            }
            self.fd = fd
            self.endpoint = "unix:\(path)"
            exposureWarning = nil
            unixSocket = (path, info.st_dev, info.st_ino)
        case .stdio:
            throw TransportError(description: "stdio is not a listening endpoint")
        }
    }

    /// Connections not yet accepted that the kernel holds for us (a burst of refused clients).
    static let backlog: Int32 = 16

    /// A socket file left at `path` is removed if nobody serves it (connect is refused); a
    /// live one, or anything that is not a socket, is an error.
    private static func removeStaleSocket(at path: String, address: sockaddr_un) throws(TransportError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw TransportError(description: "\(path) exists and is not a socket; choose another path for --gdb unix:")
        }
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard probe >= 0 else { throw TransportError(description: "socket: \(errorText())") }
        defer { Glibc.close(probe) }
        var address = address
        // SAFETY: sockaddr_un starts with the sockaddr header connect(2) expects; the size is passed.
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        let failure = errno
        if connected == 0 || failure == EAGAIN {
            // EAGAIN: it listens, with its queue of pending connections full.
            throw TransportError(description: "unix:\(path) is in use: another gdbvmm (or some other program) is serving there; stop it or choose another path")
        }
        guard failure == ECONNREFUSED else {
            throw TransportError(description: "cannot tell whether unix:\(path) is in use (connect: \(errorText(failure))); remove it if nothing serves there, or choose another path")
        }
        // Nobody listens: left behind by a gdbvmm that was killed.
        unlink(path)
    }

    deinit { close() }

    /// Stops listening and removes our socket file (not one that has replaced it since).
    func close() {
        guard !closed else { return }
        closed = true
        newcomer?.close()
        newcomer = nil
        Glibc.close(fd)
        if let unixSocket {
            var info = stat()
            if lstat(unixSocket.path, &info) == 0, info.st_dev == unixSocket.device, info.st_ino == unixSocket.inode {
                unlink(unixSocket.path)
            }
        }
    }

    /// A pending connection, non-blocking; nil when there is none.
    func acceptDescriptor() -> Int32? {
        // (accept4 is not visible to Swift's Glibc; nothing forks between the calls.)
        let client = accept(fd, nil, nil)
        guard client >= 0 else { return nil }
        _ = fcntl(client, F_SETFD, FD_CLOEXEC)
        _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
        if unixSocket == nil {
            // Every RSP exchange is a small request and reply: Nagle would add latency to each.
            var one: Int32 = 1
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        return client
    }
}

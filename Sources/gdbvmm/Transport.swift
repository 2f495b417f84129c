import Dispatch
import Foundation
import Glibc

/// A gdb connection: a socket, or stdin/stdout for `target remote | gdbvmm --gdb stdio`.
final class Connection {
    let readFD: Int32
    let writeFD: Int32
    private let ownsFDs: Bool

    init(readFD: Int32, writeFD: Int32, ownsFDs: Bool) {
        self.readFD = readFD
        self.writeFD = writeFD
        self.ownsFDs = ownsFDs
    }

    deinit { close() }

    private var closed = false
    /// Reused for every read: a packet exchange should not allocate 64 KiB each time.
    private var buffer = [UInt8](repeating: 0, count: 65536)

    func close() {
        guard ownsFDs, !closed else { return }
        closed = true
        Glibc.close(readFD)
        if writeFD != readFD { Glibc.close(writeFD) }
    }

    /// What is available now; nil at end of stream or on error (the peer went away).
    func receive() -> [UInt8]? {
        while true {
            // SAFETY: read(2) writes at most count bytes into the buffer.
            let n = buffer.withUnsafeMutableBytes { read(readFD, $0.baseAddress, $0.count) }
            if n > 0 { return Array(buffer[0..<n]) }
            if n == -1 && errno == EINTR { continue }
            return nil
        }
    }

    /// Writes everything; false if the peer went away.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            // SAFETY: offset < count, so the pointer stays inside the buffer; write(2) only reads it.
            let n = bytes.withUnsafeBytes { write(writeFD, $0.baseAddress! + offset, $0.count - offset) }
            if n > 0 { offset += n; continue }
            if n == -1 && errno == EINTR { continue }
            return false
        }
        return true
    }
}

struct TransportError: Error, CustomStringConvertible {
    var description: String
}

/// A listening TCP or Unix socket.
final class Listener {
    let fd: Int32
    /// The endpoint as a user would type it, with the real port.
    let endpoint: String
    private let unixPath: String?

    init(_ endpoint: Options.Endpoint) throws(TransportError) {
        switch endpoint {
        case let .tcp(host, port):
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw TransportError(description: "socket: \(String(cString: strerror(errno)))") }
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
            guard bound == 0, listen(fd, 4) == 0 else {
                let message = String(cString: strerror(errno))
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
            unixPath = nil
        case .unix(let path):
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let capacity = MemoryLayout.size(ofValue: address.sun_path)
            guard path.utf8.count < capacity else {
                throw TransportError(description: "unix socket path is too long (at most \(capacity - 1) bytes): \(path)")
            }
            // A stale socket from an earlier run would make bind fail; anything else we keep.
            var info = stat()
            if lstat(path, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFSOCK else {
                    throw TransportError(description: "\(path) exists and is not a socket; choose another path for --gdb unix:")
                }
                unlink(path)
            }
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw TransportError(description: "socket: \(String(cString: strerror(errno)))") }
            // SAFETY: the path was checked to be shorter than sun_path, leaving its NUL terminator.
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
            }
            // SAFETY: sockaddr_un starts with the sockaddr header bind(2) expects; the size is passed.
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0, listen(fd, 4) == 0 else {
                let message = String(cString: strerror(errno))
                Glibc.close(fd)
                throw TransportError(description: "cannot listen on unix:\(path): \(message)")
            }
            self.fd = fd
            self.endpoint = "unix:\(path)"
            unixPath = path
        case .stdio:
            throw TransportError(description: "stdio is not a listening endpoint")
        }
    }

    deinit {
        close(fd)
        if let unixPath { unlink(unixPath) }
    }

    func acceptDescriptor() -> Int32? {
        let client = Glibc.accept(fd, nil, nil)
        guard client >= 0 else { return nil }
        _ = fcntl(client, F_SETFD, FD_CLOEXEC)
        if unixPath == nil {
            // Every RSP exchange is a small request and reply: Nagle would add latency to each.
            var one: Int32 = 1
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        return client
    }
}

/// Turns away a second gdb on its own thread: wait for its first packet, answer it with an error
/// gdb prints, and close politely (closing with unread data would reset the connection and gdb
/// would only say "Connection reset by peer").
func refuseConnection(_ fd: Int32, message: String) {
    DispatchQueue.global().async {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var seen: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        // Read up to the end of the first packet: '#' and two checksum digits.
        while seen.count < 65536 {
            // SAFETY: read(2) writes at most count bytes into the buffer.
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            seen += buffer[0..<n]
            if let hash = seen.lastIndex(of: UInt8(ascii: "#")), seen.count >= hash + 3 { break }
        }
        let payload = "E." + message
        let sum = payload.utf8.reduce(UInt8(0)) { $0 &+ $1 }
        let reply = Array("+$\(payload)#".utf8) + Array(String(format: "%02x", sum).utf8)
        // SAFETY: write(2) reads count bytes of the reply buffer.
        _ = reply.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        shutdown(fd, Int32(SHUT_WR))
        // SAFETY: read(2) writes at most count bytes into the buffer.
        while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
        close(fd)
    }
}

import Foundation
import Glibc

/// A raw RSP client on a TCP (loopback) or Unix socket; reads time out after 10 s.
final class Peer {
    let fd: Int32

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        // SAFETY: sockaddr_in starts with the sockaddr header; the size is passed.
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try finishConnect(r)
    }

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = unixAddress(path)
        // SAFETY: sockaddr_un starts with the sockaddr header; the size is passed.
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try finishConnect(r)
    }

    private func finishConnect(_ result: Int32) throws {
        guard result == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw HarnessError(message: "connect failed: \(message)")
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            // SAFETY: offset < count keeps the pointer inside the buffer; send(2) only reads it.
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }

    func packet(_ payload: String) { send(frame(payload)) }

    /// Writes what the socket takes now (nothing if it is full or gone).
    func sendWithoutWaiting(_ bytes: [UInt8]) {
        // SAFETY: send(2) only reads count bytes of the buffer.
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
    }

    /// Reads until `marker` has arrived, the peer closes, or 10 s pass; calls `whileWaiting`
    /// between polls of at most 50 ms.
    func read(until marker: String, whileWaiting: () -> Void = {}) -> String {
        var text = ""
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(10)
        while !text.contains(marker) && Date() < deadline {
            whileWaiting()
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) >= 0 else { break }
            if pfd.revents == 0 { continue }
            // SAFETY: recv(2) writes at most count bytes into the buffer.
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            text += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        return text
    }

    /// Everything until the peer's end of stream (or 10 s without data).
    func readToEnd() -> String {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            // SAFETY: recv(2) writes at most count bytes into the buffer.
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            data += buffer[0..<n]
        }
        return String(decoding: data, as: UTF8.self)
    }
}

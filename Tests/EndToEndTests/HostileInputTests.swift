import Foundation
import Glibc
import Testing

/// Bad input from the gdb side never takes the VMM down: a client that sends garbage, broken
/// checksums, malformed and oversized packets, then vanishes, leaves a VMM that the next gdb
/// debugs as if nothing happened.
@Suite("hostile input", .serialized, .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct HostileInputTests {
    /// A minimal RSP client on a raw TCP socket.
    final class RawClient {
        let fd: Int32

        init(port: UInt16) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let r = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard r == 0 else { throw HarnessError(message: "connect failed") }
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit { close(fd) }

        func send(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
        func send(_ text: String) { send(Array(text.utf8)) }

        func packet(_ payload: String) {
            let sum = payload.utf8.reduce(UInt8(0)) { $0 &+ $1 }
            send("$\(payload)#" + String(format: "%02x", sum))
        }

        /// Reads until `marker` has arrived (or 5 s pass); returns everything read.
        func read(until marker: String) -> String {
            var text = ""
            var buffer = [UInt8](repeating: 0, count: 65536)
            while !text.contains(marker) {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                text += String(decoding: buffer[0..<n], as: UTF8.self)
            }
            return text
        }
    }

    @Test("garbage, bad checksums, malformed and oversized packets, then a normal gdb session")
    func garbageThenGDB() throws {
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", Harness.guest("demo-elf64")])
        do {
        let client = try RawClient(port: try #require(vmm.port))
        client.send("garbage before any packet\u{1}\u{2}")
        client.send("$qSupported#00")          // wrong checksum: NAK
        #expect(client.read(until: "-").contains("-"))
        client.packet("m")                      // no arguments
        #expect(client.read(until: "#").contains("$E"))
        client.packet("mzzzz,10")               // not hex
        #expect(client.read(until: "#").contains("$E"))
        client.packet("mffffffffffffffffffff,1") // address overflow
        #expect(client.read(until: "#").contains("$E"))
        client.packet("m100000,ffffffffffffffff") // absurd length: capped, answered
        _ = client.read(until: "#")
        client.packet("Pzz=1")
        #expect(client.read(until: "#").contains("$E"))
        client.packet("G00")                    // short G: only covered registers change
        _ = client.read(until: "#")
        client.packet("vCont;x")                // unknown action
        #expect(client.read(until: "#").contains("$E"))
        client.packet("Z2,ffffffff00000000,4")  // watchpoint on an unmapped address
        #expect(client.read(until: "#").contains("$E"))
        // An oversized packet (2 MiB without a terminator), then the client vanishes.
        client.send("$" + String(repeating: "A", count: 2 << 20))
        }  // the client's socket closes here without a word

        let r = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            break compute
            continue
            print n
            delete
            continue
            """, symbols: Harness.guest("demo-elf64"))
        let status = vmm.wait()
        expectInOrder(r.output, ["Breakpoint 1, compute (n=5)", "$1 = 5", "exited with code 041"])
        #expect(status == 33, "stderr: \(vmm.stderrText)")
    }
}

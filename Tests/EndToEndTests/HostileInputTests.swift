import Foundation
import Glibc
import Testing

/// Bad input from the gdb side never takes the VMM down: a client that sends garbage, broken
/// checksums, malformed and oversized packets, then vanishes, leaves a VMM that the next gdb
/// debugs as if nothing happened.
@Suite("hostile input", .serialized, .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct HostileInputTests {
    @Test("garbage, bad checksums, malformed and oversized packets, then a normal gdb session")
    func garbageThenGDB() throws {
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", Harness.guest("demo-elf64")])
        do {
        let client = try Peer(port: try #require(vmm.port))
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

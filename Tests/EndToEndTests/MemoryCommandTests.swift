import Foundation
import Testing

/// gdb's `find` (qSearch:memory) and `compare-sections` (qCRC) answered by gdbvmm, and the
/// binary `x` read that gdb 16 and later use.
@Suite("memory commands", .serialized, .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct MemoryCommandTests {
    /// Stopped in bench_done once the guest has planted its 8-byte value near the end of big[].
    static let toBenchDone = """
        hbreak bench_done
        continue
        delete
        """

    @Test("find: an 8-byte value in 8 MiB, counted hits, and unreadable memory, in one round trip each")
    func find() throws {
        let o = try debugSession("bench", Self.toBenchDone + """

            print/x &big[0x800000 - 64]
            set debug remote 1
            find /g &big[0], +0x800000, 0x1122334455667788
            set debug remote 0
            find /5b &big[0], +100, 0
            find /b &big[0x1ffff0], +0x20, 0x11, 0x22
            set var big[0x1ffffe] = 0x11
            set var big[0x1fffff] = 0x22
            set var big[0x200000] = 0x33
            find /b &big[0x1ffff0], +0x20, 0x11, 0x22, 0x33
            set debug remote 1
            find /b 0x7ffff00, +0x200, 0x55
            set debug remote 0
            kill
            """)
        let out = o.gdb.stdout, remote = o.gdb.stderr
        let needle = try #require(out.firstMatch(of: /\$1 = (0x[0-9a-f]+)/)).1
        expectInOrder(out, [
            "\(needle) <big+8388544>", "1 pattern found.",
            "<big>", "<big+4>", "5 patterns found.",
            "Pattern not found.",
            // Spanning the 2 MiB page boundary at big[0x200000] (guest RAM is mapped in 2 MiB pages).
            "<big+2097150>", "1 pattern found.",
            // Past the end of guest RAM (128 MiB): an error, which gdb 13 reports as no match.
            "Pattern not found.",
        ])
        expectInOrder(remote, [
            "Sending packet: $qSearch:memory:", "Packet received: 1,\(needle.dropFirst(2))",
            "Sending packet: $qSearch:memory:7ffff00;200;U", "Packet received: E0e",
        ])
        #expect(!remote.contains("Sending packet: $m"), "find read memory with m packets instead of qSearch:\n\(remote)")
    }

    @Test("8 MiB of zeroed memory, runs after escaped bytes, and a planted value read intact (replies run-length encoded)")
    func runLengthEncodedReads() throws {
        // gdb 13 reads with m (hex), gdb 16 and later with x (binary): both expand `c*N` first.
        let o = try debugSession("bench", Self.toBenchDone + """

            python
            inf = gdb.selected_inferior()
            big = int(gdb.parse_and_eval("&big[0]"))
            want = bytearray(0x800000)
            want[0x800000 - 64:0x800000 - 56] = (0x1122334455667788).to_bytes(8, "little")
            print("big", "intact" if bytes(inf.read_memory(big, 0x800000)) == bytes(want) else "WRONG")
            tricky = b"#" + b"\\x03" * 40 + b"}" * 30 + b"*" * 9 + b"$" * 7 + b"]" * 12 + b"\\x11" * 200 + b"0" * 99
            inf.write_memory(big + 0x1001, tricky)
            want[0x1001:0x1001 + len(tricky)] = tricky
            print("tricky", "intact" if bytes(inf.read_memory(big, 0x10000)) == bytes(want[:0x10000]) else "WRONG")
            gdb.execute("maint flush dcache")
            print("odd start", "intact" if bytes(inf.read_memory(big + 0x1003, 333)) == bytes(want[0x1003:0x1003 + 333]) else "WRONG")
            end
            kill
            """)
        expectInOrder(o.gdb.stdout, ["big intact", "tricky intact", "odd start intact"])
        #expect(!o.gdb.stdout.contains("WRONG"), "gdb output:\n\(o.gdb.stdout)\n\(o.gdb.stderr)")
    }

    @Test("compare-sections: every section matches, planted breakpoints included; a set var in .data is a mismatch")
    func compareSections() throws {
        let o = try debugSession("demo-elf64", """
            set breakpoint always-inserted on
            set debug remote 1
            break compute
            break square
            compare-sections
            set debug remote 0
            x/16xb compute
            set var origin.x = 99
            compare-sections
            kill
            """)
        expectInOrder(o.gdb.stdout, [
            "Section .text, range", ": matched.", "Section .data, range", ": matched.",
            "Section .text, range", ": matched.", "Section .data, range", "MIS-MATCHED!",
        ])
        // m reads hide the planted breakpoint inside compute's first 16 bytes.
        #expect(o.gdb.stdout.contains("<compute>:"))
        #expect(!o.gdb.stdout.lowercased().contains("0xcc"), "a planted 0xCC showed through:\n\(o.gdb.stdout)")
        // The breakpoints were planted (always-inserted) before the CRCs were asked for.
        expectInOrder(o.gdb.stderr, ["Sending packet: $Z0,", "Sending packet: $Z0,", "Sending packet: $qCRC:"])
        let checking = o.gdb.stderr.range(of: "$qCRC:").map { o.gdb.stderr[$0.lowerBound...] } ?? ""
        #expect(!checking.contains("Sending packet: $m"), "compare-sections read memory instead of qCRC:\n\(checking)")
    }

    /// gdb 18 from PyPI (scripts/newer-debuggers), or nil with a loud warning.
    static let newerGDB: String? = {
        let result = Harness.run([Harness.repository.appendingPathComponent("scripts/newer-debuggers").path],
                                 timeout: 600)
        let bin = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0, !bin.isEmpty, FileManager.default.isExecutableFile(atPath: bin + "/gdb") else {
            Harness.warn("skipping the gdb 18 test: scripts/newer-debuggers failed (no PyPI?):\n\(result.output)")
            return nil
        }
        return bin + "/gdb"
    }()

    @Test("gdb 18 reads memory with binary x packets, breakpoints hidden", .enabled(if: newerGDB != nil, "needs gdb 18"))
    func binaryReads() throws {
        let gdb = try #require(Self.newerGDB)
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", Harness.guest("demo-elf64")])
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-e2e-\(UUID().uuidString).gdb")
        try """
            set pagination off
            set confirm off
            target remote \(vmm.gdbTarget)
            break compute
            set breakpoint always-inserted on
            set debug remote 1
            x/16xb compute
            print origin
            python m = gdb.selected_inferior().read_memory(0x100000, 0x30000); print("read", len(m))
            set debug remote 0
            compare-sections
            kill
            """.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let result = Harness.run([gdb, "-nx", "-batch", "-x", script.path, Harness.guest("demo-elf64")])
        _ = vmm.wait()
        expectInOrder(result.stdout, [
            // The first instruction of compute is push %rbp (0x55), not the planted 0xCC.
            "<compute>:\t0x55",
            "\"origin\"", "read 196608",
            "Section .text, range", ": matched.",
        ])
        expectInOrder(result.stderr, ["Sending packet: $x", "Packet received: b"])
        #expect(!result.stdout.lowercased().contains("0xcc"), "a planted 0xCC showed through:\n\(result.stdout)")
        #expect(!result.stderr.contains("Sending packet: $m"), "gdb 18 used m packets:\n\(result.stderr)")
    }
}

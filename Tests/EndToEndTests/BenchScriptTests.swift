import Foundation
import Testing

/// scripts/bench's instant stub: the floor column. Its figures are only worth reading if the
/// replay serves gdb exactly what gdbvmm did; the bench's own checks (the function after 300
/// stepi, ticks after 200 hits, the line after `next`, the bytes read) run against it too.
@Suite("scripts/bench", .serialized, .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct BenchScriptTests {
    @Test("the instant stub replays a recorded gdbvmm session and passes the bench's checks on every row it serves")
    func instantStubReplaysTheSession() throws {
        _ = Harness.guestsBuilt
        let rows = ["stepi", "bp", "next", "read"]
        let r = Harness.run([Harness.repository.appendingPathComponent("scripts/bench").path,
                             "--rounds", "1", "--no-qemu", "--only", rows.joined(separator: ","),
                             "--vmm", Harness.binary, "--gdb", try #require(Harness.gdbPath)], timeout: 300)
        #expect(r.status == 0, "bench failed:\n\(r.output)")
        #expect(r.output.contains("recorded gdbvmm's session for the instant stub"), "\(r.output)")
        #expect(!r.output.contains("note: instant stub"), "the replay diverged or failed:\n\(r.output)")
        let header = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("| workload |") })
        let columns = header.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        let stubColumn = try #require(columns.firstIndex(of: "instant stub"))
        for label in ["300 stepi", "200 breakpoint hits (continue)", "next over one line", "read 8 MiB through gdb"] {
            let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("| \(label)") }, "no row \(label)")
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            let time = cells[stubColumn]
            #expect(time.range(of: #"^[0-9.]+ (us|ms|s)$"#, options: .regularExpression) != nil,
                    "\(label): the instant stub's cell is \(time)")
        }
        // Every round's list names the stub's figures beside gdbvmm's.
        #expect(r.stdout.contains("replay "), "\(r.stdout)")
    }
}

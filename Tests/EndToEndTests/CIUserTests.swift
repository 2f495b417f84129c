import Foundation
import Testing

/// What a CI job relies on: --timeout, and the test-kernel template with its example gdb test.
@Suite("CI user", .serialized, .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct CIUserTests {
    @Test("--timeout ends a guest that runs on: status 124, registers on stderr; an attached gdb hears SIGALRM")
    func timeout() throws {
        let free = Harness.run([Harness.binary, "--timeout", "0.5", "--serial", "none", Harness.guest("chatter")], timeout: 30)
        #expect(free.status == 124)
        expectInOrder(free.stderr, ["gdbvmm: the guest ran past --timeout 0.5 s: ended (exit status 124)",
                                    "vCPU 0 (CPU#0 [running], long mode):", "rip    0x", "cs     sel 0x8"])
        let o = try debugSession("chatter", "continue", vmmArguments: ["--timeout", "1", "--serial", "none"])
        #expect(o.vmmStatus == 124)
        expectInOrder(o.gdb.output, ["Program terminated with signal SIGALRM"])
        expectInOrder(o.vmmStderr, ["ran past --timeout 1.0 s", "rip    0x"])
    }

    /// guests/template built with the system gcc and ld, and its example test run the way the
    /// README tells a CI job to run it.
    @Test("the template kernel builds (ELF64 and multiboot), boots, and its example gdb test passes")
    func templateExample() throws {
        let template = Harness.repository.appendingPathComponent("guests/template").path
        let build = Harness.run(["make", "-s", "-C", template], timeout: 120)
        #expect(build.status == 0, "\(build.output)")
        for image in ["kernel.elf64", "kernel.mb"] {
            let r = Harness.run([Harness.binary, "--timeout", "60", template + "/build/" + image], timeout: 90)
            #expect(r.status == 33, "\(image): \(r.output)")
            #expect(r.stdout.contains("fibonacci(20): ok (6765)"), "\(image)")
        }
        let test = Harness.run(["make", "-s", "-C", template, "test", "GDBVMM=" + Harness.binary,
                                "GDB=" + (Harness.gdbPath ?? "gdb")], timeout: 120)
        #expect(test.status == 0, "\(test.output)")
        expectInOrder(test.stdout, ["Breakpoint 1, report", "PASS stopped in report()", "PASS result is fibonacci(20): 6765",
                                    "PASS report was called with that value", "PASS exit status 33: [33]"])
        // A session that cannot run fails the job.
        let broken = Harness.run(["make", "-s", "-C", template, "test", "GDBVMM=false", "GDB=" + (Harness.gdbPath ?? "gdb")],
                                 timeout: 120)
        #expect(broken.status != 0)
        #expect(broken.stdout.contains("FAIL the session ran to its end"), "\(broken.output)")
    }
}

import Foundation
import Testing

/// LLDB against gdbvmm, driven in batch mode: Debian's lldb (14) and PyPI's LLDB 23. Connect,
/// break, step, memory, every register set including AVX and the system registers, a
/// watchpoint, continue, interrupt, kill. Skipped (loudly) for an LLDB that cannot be had.
@Suite("LLDB sessions", .serialized, .enabled(if: Harness.hasKVM, "needs /dev/kvm"))
struct LLDBSessionTests {
    /// The LLDB binary and the environment it needs.
    static func lldb(_ which: String) -> (path: String, environment: [String])? {
        switch which {
        case "Debian lldb":
            guard let path = Debuggers.debianLLDB else { return nil }
            return (path, Debuggers.debianLLDBPythonPath.map { ["PYTHONPATH=\($0)"] } ?? [])
        default:
            guard let path = Debuggers.lldb23 else { return nil }
            return (path, [])
        }
    }

    /// LLDB commands that press Ctrl-C (SendAsyncInterrupt) during the next `continue`, once the
    /// guest has written `line` to its serial file, as Harness.interrupt does for gdb.
    static func interrupt(whenSerial path: String, shows line: String) -> [String] {
        let function = """
            def gdbvmm_interrupt():
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        if '\(line)' in open('\(path)').read().splitlines():
                            break
                    except FileNotFoundError:
                        pass
                    time.sleep(0.01)
                debugger.GetSelectedTarget().GetProcess().SendAsyncInterrupt()
            """
        let escaped = function.replacingOccurrences(of: "\n", with: "\\n")
        return ["script import threading, time", "script debugger = lldb.debugger",
                "script exec(\"\(escaped)\")",
                "script threading.Thread(target=gdbvmm_interrupt, daemon=True).start()"]
    }

    @Test("break, step, memory, registers, watchpoint, interrupt, kill", arguments: ["Debian lldb", "LLDB 23"])
    func session(which: String) throws {
        guard let lldb = Self.lldb(which) else { return }
        let serial = Harness.serialFile()
        defer { try? FileManager.default.removeItem(atPath: serial) }
        let guest = Harness.guest("demo-elf64")
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "--serial", "file:" + serial, guest])
        let port = try #require(vmm.port)
        let ymm = String(repeating: "0x5a ", count: 15) + "0x5a"
        let commands = [
            "gdb-remote \(port)",
            "breakpoint set -n compute",
            "continue",
            "thread backtrace",
            "step",
            "frame variable",
            "memory read -s4 -fx -c2 &origin",
            "memory write -s4 &origin 0x14",
            "expression origin.x",
            "register read --all",
            "register write lstar 0xffffffff81000000",
            "register write ymm0h '{\(ymm)}'",
            "stepi",
            "register read lstar ymm0h gdtr_base dr7 cr0",
            "expression spin_forever = 1",
        ] + Self.interrupt(whenSerial: serial, shows: "spinning") + [
            "continue",
            // Last: batch LLDB stops reading commands once a stop's reason is gone (a deleted
            // watchpoint's stop reads as a bare SIGTRAP, an "abnormal" stop).
            "watchpoint set variable counter",
            "continue",
            "process kill",
        ]
        let r = Harness.run(lldb.environment + [lldb.path, "-b", guest] + commands.flatMap { ["-o", $0] }, timeout: 180)
        let o = r.output
        expectInOrder(o, [
            "stop reason = breakpoint 1.1", "compute(n=5) at demo.c:60",
            "kmain",
            "stop reason = step in", "square(x=5) at demo.c:49",
            "x = 5",
            "0x00000003 0x00000004",
            "= 20",
            // Every register set.
            "general:", "rip = 0x", "fs_base = 0x",
            "float:", "st0 = ", "fctrl = 0x0000037f",
            "vector:", "xmm0 = {", "mxcsr = 0x00001f80", "ymm0h = {", "ymm15h = {",
            "system:", "cr0 = 0x0000000080050033", "gdtr_base = 0x", "tr_limit = 0x", "k_gs_base = 0x", "lstar = 0x",
            "tsc = 0x", "apic_base = 0x00000000fee00900", "dr7 = 0x0000000000000400",
            // Written, then read back after the guest ran an instruction.
            "lstar = 0xffffffff81000000", "ymm0h = {\(ymm)}", "gdtr_base = 0x0000000000000500", "dr7 = 0x", "cr0 = 0x",
            "stop reason = signal SIGINT",
            "Watchpoint created", "stop reason = watchpoint 1",
            "Process 1 exited",
        ])
        let status = vmm.wait(timeout: 60)
        #expect(status == 0, "LLDB output:\n\(o)")
    }

    @Test("zeroed memory and a planted value read intact (run-length encoded replies)", arguments: ["Debian lldb", "LLDB 23"])
    func runLengthEncodedReads(which: String) throws {
        guard let lldb = Self.lldb(which) else { return }
        let guest = Harness.guest("bench")
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "--serial", "none", guest])
        let port = try #require(vmm.port)
        let commands = [
            "gdb-remote \(port)",
            "breakpoint set -n bench_done",
            "continue",
            // 64 bytes before the end of big[]: 0x1122334455667788 between zeros.
            "memory read --force -s8 -fx -c8 '(char *)&big + 8388544 - 32'",
            "memory read --force -s8 -fu -c4096 '(char *)&big'",
            "process kill",
        ]
        let r = Harness.run(lldb.environment + [lldb.path, "-b", guest] + commands.flatMap { ["-o", $0] }, timeout: 180)
        let o = r.output
        expectInOrder(o, ["stop reason = breakpoint 1.1", "0x0000000000000000 0x0000000000000000",
                          "0x0000000000000000 0x0000000000000000", "0x1122334455667788 0x0000000000000000"])
        // 4096 values of big[]'s first 32 KiB, all 0: no other number in those lines.
        let values = o.split(separator: "\n").filter { $0.contains(": 0 ") || $0.hasSuffix(": 0") || $0.contains(" 0 0") }
        #expect(values.count >= 4096 / 8, "LLDB output:\n\(o)")
        #expect(!o.contains("error:"), "LLDB output:\n\(o)")
        _ = vmm.wait(timeout: 60)
    }

    @Test("LLDB 23 shows ymm0-15 made of xmm and ymmNh, and writes them", arguments: ["LLDB 23"])
    func ymmRegisters(which: String) throws {
        guard let lldb = Self.lldb(which) else { return }
        let guest = Harness.guest("demo-elf64")
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", guest])
        let port = try #require(vmm.port)
        let bytes = (1...32).map { "0x" + String(format: "%02x", $0) }.joined(separator: " ")
        let r = Harness.run([lldb.path, "-b", guest, "-o", "gdb-remote \(port)", "-o", "register write ymm3 '{\(bytes)}'",
                             "-o", "stepi", "-o", "register read ymm3 xmm3 ymm3h", "-o", "process kill"], timeout: 120)
        let low = (1...16).map { "0x" + String(format: "%02x", $0) }.joined(separator: " ")
        let high = (17...32).map { "0x" + String(format: "%02x", $0) }.joined(separator: " ")
        expectInOrder(r.output, ["ymm3 = {\(bytes)}", "xmm3 = {\(low)}", "ymm3h = {\(high)}"])
        _ = vmm.wait(timeout: 60)
    }
}

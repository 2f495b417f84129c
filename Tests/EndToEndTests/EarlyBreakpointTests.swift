import Foundation
import Testing

/// Breakpoints on code the guest maps only later, with its own page tables: a kernel's
/// `break start_kernel` before boot. The highhalf guest maps late_work at 512 GiB itself.
@Suite("breakpoints before the guest maps its code", .serialized,
       .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct EarlyBreakpointTests {
    @Test("break on a function not mapped at boot: it hits each time, as a software breakpoint")
    func breakBeforeMapping() throws {
        let o = try debugSession("highhalf", """
            break late_work
            hbreak kmain
            continue
            continue
            bt
            print late_calls
            continue
            print late_calls
            delete
            continue
            """)
        expectInOrder(o.gdb.output, ["Breakpoint 1 at 0x8000000000", "Hardware assisted breakpoint 2 at",
                                     "Breakpoint 2, kmain", "Breakpoint 1, late_work", "#1 ", "in kmain ()",
                                     "$1 = 0", "Breakpoint 1, late_work", "$2 = 1", "exited with code 0205"])
        #expect(!o.gdb.output.contains("Cannot insert breakpoint"), "gdb output: \(o.gdb.output)")
        #expect(o.vmmStatus == 133, "stderr: \(o.vmmStderr)")
        #expect(o.vmmStdout == "highhalf: mapped\nhighhalf: freed code's page intact\nhighhalf: done\n")
    }

    @Test("sixteen breakpoints on code not mapped at boot, set before boot, all hit: the ELF's segments say where it lies")
    func sixteenBreakpointsBeforeMapping() throws {
        let breaks = (0..<16).map { "break late_\($0)" }.joined(separator: "\n")
        let continues = Array(repeating: "continue", count: 16).joined(separator: "\n")
        let o = try debugSession("highhalf", """
            \(breaks)
            \(continues)
            print late_steps
            continue
            """)
        expectInOrder(o.gdb.output, (0..<16).map { "late_\($0) () at" } + ["$1 = 15", "exited with code 0205"])
        #expect((0..<16).allSatisfy { o.gdb.output.contains("Breakpoint \($0 + 1), late_\($0) ()") }, "gdb output: \(o.gdb.output)")
        #expect(!o.gdb.output.contains("Cannot insert breakpoint"), "gdb output: \(o.gdb.output)")
        #expect(o.vmmStatus == 133, "stderr: \(o.vmmStderr)")
    }

    /// A kernel frees its init code (start_kernel's page) and reuses the page: a breakpoint set
    /// there before boot, still inserted, must not write its 0xCC into whatever the page holds.
    @Test("a breakpoint set before mapping, still inserted when the guest unmaps that code and fills its page with data, leaves the data alone")
    func breakpointOnFreedCode() throws {
        let o = try debugSession("highhalf", """
            break late_work
            continue
            continue
            continue
            """)
        expectInOrder(o.gdb.output, ["Breakpoint 1, late_work", "Breakpoint 1, late_work", "exited with code 0205"])
        #expect(o.vmmStatus == 133, "stderr: \(o.vmmStderr)")
        #expect(o.vmmStdout.contains("highhalf: freed code's page intact"), "console: \(o.vmmStdout)")
    }

    @Test("breakpoints where neither the page tables nor the image say anything use the four debug registers; a fifth is refused and the session goes on")
    func fifthUnmappedBreakpoint() throws {
        let o = try debugSession("highhalf", """
            break *0x9000000000
            break *0x9000000010
            break *0x9000000020
            break *0x9000000030
            break *0x9000000040
            python
            try:
                gdb.execute("continue")
            except gdb.error as e:
                print("REFUSED: %s" % e)
            end
            delete 5
            break late_work
            continue
            print $pc
            delete
            continue
            """)
        // gdb's warning goes to stderr, which the harness appends after stdout.
        #expect(o.gdb.stderr.contains("Cannot insert breakpoint 5"), "gdb stderr: \(o.gdb.stderr)")
        expectInOrder(o.gdb.stdout, ["REFUSED", "Breakpoint 6, ", "late_work", "exited with code 0205"])
        #expect(o.vmmStatus == 133, "stderr: \(o.vmmStderr)")
    }

    /// The bzkernel guest is a bzImage laid out as Linux's: its kernel (bzkernel.elf, linked at
    /// 0xffffffff81000000 as vmlinux is) exists only as the payload its decompressor writes out
    /// at 16 MiB before jumping there. gdb gets the kernel's symbols, as with `gdb vmlinux`.
    func bzkernelSession(_ commands: String) throws -> SessionOutcome {
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "-m", "64M", Harness.guest("bzkernel")])
        let gdb = Harness.gdb("target remote \(vmm.gdbTarget)\n" + commands, symbols: Harness.guest("bzkernel.elf"))
        let status = vmm.wait(timeout: 60)
        return SessionOutcome(gdb: gdb, vmmStatus: status, vmmStdout: vmm.stdout, vmmStderr: vmm.stderrText)
    }

    @Test("a bzImage's kernel, written out by its decompressor at boot: 16 breakpoints set before boot all hit, and one on code the kernel rewrites hits again")
    func bzImageKernelBreakpoints() throws {
        let breaks = (0..<16).map { "break late_\($0)" }.joined(separator: "\n")
        let continues = Array(repeating: "continue", count: 16).joined(separator: "\n")
        let o = try bzkernelSession("""
            break late_work
            \(breaks)
            continue
            print late_calls
            continue
            print late_calls
            \(continues)
            print late_steps
            continue
            """)
        expectInOrder(o.gdb.output, ["Breakpoint 1 at 0xffffffff81", "Breakpoint 1, late_work", "$1 = 0",
                                     "Breakpoint 1, late_work", "$2 = 1"]
                      + (0..<16).map { "Breakpoint \($0 + 2), late_\($0) () at" } + ["$3 = 15", "exited with code 0245"])
        #expect(!o.gdb.output.contains("Cannot insert breakpoint"), "gdb output: \(o.gdb.output)")
        #expect(!o.gdb.output.contains("SIGTRAP"), "gdb output: \(o.gdb.output)")
        #expect(o.vmmStatus == 165, "stderr: \(o.vmmStderr)")
        #expect(o.vmmStdout == "bzkernel: running at its link address\nbzkernel: done\n")
    }

    @Test("after a system_reset, breakpoints on a bzImage's kernel wait for its decompressor again (kept inserted, too), and the image it writes out is intact")
    func bzImageKernelBreakpointsAfterReset() throws {
        let breaks = (1...5).map { "break late_\($0)" }.joined(separator: "\n")
        let o = try bzkernelSession("""
            set breakpoint always-inserted on
            \(breaks)
            continue
            monitor system_reset
            continue
            print late_steps
            continue
            delete
            hbreak late_9
            continue
            delete
            continue
            """)
        expectInOrder(o.gdb.output, ["Breakpoint 1, late_1 () at", "Breakpoint 1, late_1 () at", "$1 = 1",
                                     "Breakpoint 2, late_2 () at", "Hardware assisted breakpoint 6 at",
                                     "Breakpoint 6, late_9 () at", "exited with code 0245"])
        #expect(!o.gdb.output.contains("SIGTRAP"), "gdb output: \(o.gdb.output)")
        #expect(!o.gdb.output.contains("Cannot insert breakpoint"), "gdb output: \(o.gdb.output)")
        #expect(o.vmmStatus == 165, "stderr: \(o.vmmStderr)")
    }

    /// startup_64 runs at its physical address before it maps itself at its link address: the
    /// int3 planted for `break startup_64` is hit there, where gdb has no breakpoint. Reported as
    /// swbreak, gdb took it for a breakpoint it had just removed and resumed into it forever.
    @Test("a breakpoint hit through an identity-mapped alias of its code (startup_64 at 16 MiB) is a SIGTRAP with a note; stepi and continue go on")
    func breakpointHitAtAlias() throws {
        let o = try bzkernelSession("""
            break startup_64
            break kmain
            continue
            print/x $pc
            stepi
            print/x $pc
            x/i $pc
            continue
            bt
            continue
            """)
        // gdbvmm's note reaches gdb's console, which gdb writes to stderr.
        #expect(o.gdb.stderr.contains("ran into the breakpoint at 0xffffffff81000000 at 0x1000000"), "gdb stderr: \(o.gdb.stderr)")
        expectInOrder(o.gdb.stdout, ["Breakpoint 1 at 0xffffffff81000000", "SIGTRAP", "$1 = 0x1000000", "$2 = 0x1000001", "cld", "Breakpoint 2, kmain",
                                     "in startup_64 ()", "exited with code 0245"])
        #expect(o.vmmStatus == 165, "stderr: \(o.vmmStderr)")
        #expect(o.vmmStdout == "bzkernel: running at its link address\nbzkernel: done\n")
    }
}

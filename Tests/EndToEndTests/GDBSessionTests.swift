import Foundation
import Testing

/// Outcome of one gdb session against one gdbvmm.
struct SessionOutcome {
    var gdb: Harness.Result
    var vmmStatus: Int32
    var vmmStdout: String
    var vmmStderr: String
}

/// Starts gdbvmm held at the first instruction (-S) on a fresh TCP port (or a Unix socket),
/// runs the gdb commands against it, then waits for gdbvmm to end.
func debugSession(_ guest: String, _ commands: String, vmmArguments: [String] = [],
                  unixSocket: Bool = false, waitForExit: Double = 60) throws -> SessionOutcome {
    let endpoint = unixSocket
        ? "unix:" + FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-\(UUID().uuidString.prefix(8)).sock").path
        : "tcp:0"
    let vmm = try RunningVMM(["--gdb", endpoint, "-S"] + vmmArguments + [Harness.guest(guest)])
    let gdb = Harness.gdb("target remote \(vmm.gdbTarget)\n" + commands, symbols: Harness.guest(guest))
    let status = vmm.wait(timeout: waitForExit)
    return SessionOutcome(gdb: gdb, vmmStatus: status, vmmStdout: vmm.stdout, vmmStderr: vmm.stderrText)
}

/// Asserts that `needles` appear in `text` in this order.
func expectInOrder(_ text: String, _ needles: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    var rest = Substring(text)
    for needle in needles {
        guard let range = rest.range(of: needle) else {
            Issue.record("expected \"\(needle)\" (in order) in gdb output:\n\(text)", sourceLocation: sourceLocation)
            return
        }
        rest = rest[range.upperBound...]
    }
}

@Suite("gdb sessions", .serialized, .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct GDBSessionTests {
    static let sourceLevelScript = """
        break compute
        continue
        bt
        step
        bt 1
        finish
        next
        print origin
        x/s greeting
        print n
        set var origin.x = 20
        print origin.x
        stepi
        info line *$pc
        continue
        """

    static func checkSourceLevel(_ o: SessionOutcome) {
        let out = o.gdb.output
        expectInOrder(out, [
            "Breakpoint 1 at", "Breakpoint 1, compute (n=5) at", "demo.c:60",
            "#0  compute (n=5)", "#1 ", "in kmain",
            "square (x=5) at", "demo.c:49",
            "#0  square (x=5)",
            "Value returned is $1 = 25",
            "$2 = {x = 3, y = 4, name = ", "\"origin\"}",
            "\"hello from the guest\"",
            "$3 = 5",
            "$4 = 20",
            "[Inferior 1 (Remote target) exited with code 0103]",
        ])
        // total = 30 + 20 = 50; the guest writes 50 - 17 = 33 to port 0xF4: (33 << 1) | 1 = 67.
        #expect(o.vmmStatus == 67, "gdbvmm exit status; stderr: \(o.vmmStderr)")
        #expect(o.vmmStdout.contains("gdbvmm demo guest"))
    }

    @Test("source-level session on the ELF64-direct guest: break before boot, bt, step, finish, print, set var, x/s, stepi, exit code")
    func sourceLevelELF64() throws {
        let o = try debugSession("demo-elf64", Self.sourceLevelScript)
        Self.checkSourceLevel(o)
    }

    @Test("the same session on the multiboot (a.out kludge) guest, over a Unix socket")
    func sourceLevelMultiboot() throws {
        let o = try debugSession("demo-multiboot", Self.sourceLevelScript, unixSocket: true)
        Self.checkSourceLevel(o)
    }

    @Test("the same session on the ELF32 multiboot guest, served the i386 register view")
    func sourceLevelMultiboot32() throws {
        let o = try debugSession("demo-multiboot32", Self.sourceLevelScript + "\n")
        Self.checkSourceLevel(o)
        #expect(!o.gdb.output.contains("not compatible"))
    }

    @Test("next steps over calls line by line")
    func next() throws {
        let o = try debugSession("demo-elf64", """
            break kmain
            continue
            next
            next
            next
            info locals
            kill
            """)
        expectInOrder(o.gdb.output, ["Breakpoint 1, kmain (mbi=0x0) at demo.c:106", "107", "if (mbi != 0)", "110",
                                     "int result = compute(5);", "111", "int total = add(result, origin.x);",
                                     "result = 30", "[Inferior 1 (Remote target) killed]"])
        #expect(o.vmmStatus == 0, "kill ends the VM with status 0")
    }

    @Test("hbreak uses a debug register and steps on past it")
    func hardwareBreakpoint() throws {
        let o = try debugSession("demo-elf64", """
            hbreak square
            hbreak add
            continue
            print x
            continue
            print a
            print b
            delete
            continue
            """)
        expectInOrder(o.gdb.output, ["Hardware assisted breakpoint 1", "Hardware assisted breakpoint 2",
                                     "Breakpoint 1, square (x=5)", "$1 = 5",
                                     "Breakpoint 2, add (a=25, b=5)", "$2 = 25", "$3 = 5",
                                     "exited with code 041"])
        #expect(o.vmmStatus == 33)
    }

    @Test("memory reads show the original bytes under planted breakpoints; a fifth hbreak is refused")
    func breakpointShadowAndDebugRegisterLimit() throws {
        let o = try debugSession("demo-elf64", """
            set breakpoint always-inserted on
            break compute
            maint packet m100120,4
            monitor xp /4xb 0x100120
            hbreak square
            hbreak add
            hbreak spin
            hbreak checksum
            hbreak kmain
            continue
            """)
        // The raw `m` reply (not gdb's own shadow copy) has the original first byte 0x8b;
        // physical memory really holds the 0xcc.
        expectInOrder(o.gdb.output, ["Breakpoint 1 at 0x100120", "received: \"8b45fc89\"",
                                     "Hardware assisted breakpoint 6", "Cannot insert hardware breakpoint 6"])
        #expect(o.gdb.output.contains("0000000000100120: 0xcc 0x45 0xfc 0x89"))
        // gdb's batch error detaches: the guest runs on to its end.
        #expect(o.vmmStatus == 33)
    }

    @Test("gdb's breakpoints and the guest's own int3 coexist: the guest's go to its IDT")
    func guestInt3WithBreakpoints() throws {
        let o = try debugSession("trap", """
            break on_breakpoint
            continue
            bt 2
            continue
            continue
            print breakpoints_seen
            continue
            """)
        expectInOrder(o.gdb.output, ["Breakpoint 1, on_breakpoint () at trap.c", "#1 ", "breakpoint_entry",
                                     "Breakpoint 1, on_breakpoint", "Breakpoint 1, on_breakpoint", "$1 = 2",
                                     "exited with code 07"])
        #expect(o.vmmStatus == 7)
    }

    @Test("inferior calls: print square(10), add(2, 3)")
    func inferiorCall() throws {
        let o = try debugSession("demo-elf64", """
            break compute
            continue
            print square(10)
            print add(2, 3)
            delete
            print compute(7)
            bt 1
            continue
            """)
        expectInOrder(o.gdb.output, ["Breakpoint 1, compute", "$1 = 100", "$2 = 5", "$3 = 56",
                                     "#0  compute (n=5)", "exited with code 041"])
        #expect(o.vmmStatus == 33)
    }

    @Test("info registers: general, control, segment bases, SSE, x87")
    func registers() throws {
        let o = try debugSession("demo-elf64", """
            break checksum
            continue
            info registers rip cr0 cr3 cr4 efer fs_base gs_base k_gs_base
            info registers xmm0
            info registers mxcsr fctrl
            p/x $xmm0.v4_int32
            set var $rax = 0x1234
            p/x $rax
            set var $xmm1.v4_int32[0] = 7
            p $xmm1.v4_int32[0]
            kill
            """)
        let out = o.gdb.output
        expectInOrder(out, ["Breakpoint 1, checksum", "rip", "<checksum", "cr0            0x80050033", "PG",
                            "cr3            0x1000", "cr4", "efer           0x500", "LMA",
                            "fs_base", "gs_base", "k_gs_base",
                            "xmm0", "mxcsr", "0x1f80", "fctrl", "0x37f",
                            "{0x11111111, 0x22222222, 0x33333333, 0x44444444}",
                            "0x1234", "= 7"])
    }

    @Test("register writes KVM refuses (CR0 without paging in long mode, EFER without LME) get an error; nothing changes")
    func refusedRegisterWrites() throws {
        let o = try debugSession("demo-elf64", """
            break compute
            continue
            maint packet P3b=0100000000000000
            maint packet p3b
            maint packet P40=0000000000000000
            maint packet p40
            stepi
            bt 1
            delete
            continue
            """)
        // cr0 is register 59, efer 64; a refusal names the register and the value.
        expectInOrder(o.gdb.output, ["Breakpoint 1, compute", "received: \"E.cr0: the CPU refused 0x1 (KVM_SET_SREGS",
                                     "received: \"3300058000000000\"",
                                     "received: \"E.efer: the CPU refused 0x0 (KVM_SET_SREGS", "received: \"0005000000000000\"",
                                     "in compute (n=5)", "exited with code 041"])
        #expect(o.vmmStatus == 33)
    }

    @Test("Ctrl-C (interrupt) stops a spinning guest, which continues afterwards")
    func interrupt() throws {
        let serial = Harness.serialFile()
        defer { try? FileManager.default.removeItem(atPath: serial) }
        let o = try debugSession("demo-elf64", """
            break spin
            continue
            set var spin_forever = 1
            delete
            \(Harness.interrupt(whenSerial: serial, shows: "spinning"))
            continue
            bt 1
            print counter > 0
            set var spin_forever = 0
            continue
            """, vmmArguments: ["--serial", "file:" + serial])
        expectInOrder(o.gdb.output, ["Breakpoint 1, spin", "Program received signal SIGINT, Interrupt.",
                                     "spin ()", "#0 ", "spin", "$1 = 1", "exited with code 041"])
        #expect(!o.gdb.output.contains("never came"), "pressed only after the guest said it was spinning")
        #expect(o.vmmStatus == 33)
    }

    @Test("detach removes breakpoints and the guest runs on to its end")
    func detach() throws {
        let o = try debugSession("demo-elf64", """
            break compute
            break checksum
            continue
            detach
            """)
        expectInOrder(o.gdb.output, ["Breakpoint 1, compute", "[Inferior 1 (Remote target) detached]"])
        #expect(o.vmmStatus == 33, "stderr: \(o.vmmStderr)")
        #expect(o.vmmStdout.contains("demo guest done"))
    }

    @Test("gdb's MI interpreter, as IDEs drive it (VS Code, CLion, Eclipse)")
    func machineInterface() throws {
        let guest = Harness.guest("demo-elf64")
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", guest])
        let commands = [
            "-file-exec-and-symbols \(guest)", "-target-select remote \(vmm.gdbTarget)",
            "-break-insert compute", "-exec-continue", "-stack-list-frames",
            "-data-evaluate-expression origin.x", "-exec-step", "-thread-info",
            "-data-list-register-values x 16", "-exec-finish", "-break-delete", "-exec-continue", "-gdb-exit",
        ]
        let r = Harness.run([Harness.gdbPath ?? "gdb", "-nx", "--interpreter=mi2"],
                            stdin: commands.joined(separator: "\n") + "\n")
        let status = vmm.wait()
        expectInOrder(r.stdout, [
            "^connected", "^done,bkpt={number=\"1\"", "func=\"compute\"",
            "*stopped,reason=\"breakpoint-hit\"", "func=\"compute\",args=[{name=\"n\",value=\"5\"}]",
            "^done,stack=[frame={level=\"0\"", "^done,value=\"3\"",
            "*stopped,reason=\"end-stepping-range\"", "func=\"square\"",
            "^done,threads=[{id=\"1\"", "name=\"vCPU 0\"",
            "^done,register-values=[{number=\"16\",value=\"0x1000ef\"}]",
            "*stopped,reason=\"function-finished\"", "return-value=\"25\"",
            "*stopped,reason=\"exited\",exit-code=\"041\"",
        ])
        #expect(status == 33)
    }

    @Test("target remote | gdbvmm --gdb stdio: the pipe transport")
    func stdioTransport() {
        let guest = Harness.guest("demo-elf64")
        let r = Harness.gdb("""
            target remote | \(Harness.binary) --gdb stdio \(guest)
            break square
            continue
            print x
            delete
            continue
            """, symbols: guest)
        expectInOrder(r.output, ["Breakpoint 1, square (x=5)", "$1 = 5", "exited with code 041"])
        // With --gdb stdio the guest's serial output goes to stderr, which gdb passes through.
        #expect(r.output.contains("gdbvmm demo guest"))
    }

    @Test("a guest crash is a stop gdb can inspect (SIGSEGV for a triple fault)")
    func crashStop() throws {
        let o = try debugSession("fault", """
            continue
            info registers rip
            print $idtr_limit_unavailable
            continue
            kill
            """)
        expectInOrder(o.gdb.output, ["Program received signal SIGSEGV", "rip", "Program received signal SIGSEGV"])
        #expect(o.vmmStatus == 4, "a killed crashed guest still reports the crash")
        #expect(o.vmmStderr.contains("triple fault"))
    }

    @Test("a second gdb is refused while the first keeps its session")
    func secondConnectionRefused() throws {
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", Harness.guest("demo-elf64")])
        let guest = Harness.guest("demo-elf64")
        let first = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            break compute
            continue
            shell gdb -nx -batch -ex 'target remote \(vmm.gdbTarget)' -ex 'info registers rip'
            print n
            continue
            """, symbols: guest)
        let status = vmm.wait()
        expectInOrder(first.stdout, ["Breakpoint 1, compute (n=5)", "$1 = 5", "exited with code 041"])
        // The second gdb (run from the first one's `shell`) prints the refusal as a warning.
        #expect(first.stderr.contains("Remote failure reply: E.gdbvmm is already serving another gdb"))
        #expect(status == 33)
    }

    @Test("without -S the guest runs until gdb attaches, and gdb finds it stopped where it was")
    func attachToRunningGuest() throws {
        // The smp guest loops until a debugger sets stop_all; then vCPU 0 exits with the CPU count.
        let vmm = try RunningVMM(["--gdb", "tcp:0", Harness.guest("smp")])
        let r = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            print ticks[0] > 0
            set var stop_all = 1
            continue
            """, symbols: Harness.guest("smp"))
        let status = vmm.wait()
        expectInOrder(r.output, ["$1 = 1", "exited with code 03"])
        #expect(status == 3, "stderr: \(vmm.stderrText)")
    }
}

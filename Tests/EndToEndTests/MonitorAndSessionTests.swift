import Foundation
import Glibc
import Testing

/// `monitor` commands, extended-remote, reconnecting after a lost gdb, PVH boot.
@Suite("monitor and sessions", .serialized, .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct MonitorAndSessionTests {
    @Test("every monitor command")
    func monitorCommands() throws {
        let o = try debugSession("demo-elf64", """
            break compute
            continue
            monitor help
            monitor info exits
            monitor info registers
            monitor info sysregs
            monitor info mem
            monitor info mappings
            monitor info tlb
            monitor info mtree
            monitor gva2gpa 0x100120
            monitor info cpus
            monitor xp /2g 0x1000
            monitor xp /xb 0x100000 4
            monitor phys on
            x/2xb 0x100000
            monitor phys off
            monitor bogus
            monitor exits reset
            monitor system_reset
            maintenance flush register-cache
            print $pc
            continue
            bt 1
            monitor quit
            """)
        // gdb prints monitor output on stderr, everything else on stdout.
        expectInOrder(o.gdb.stdout, [
            "Breakpoint 1, compute", "0x100000 <_start>:\t0x31\t0xed",
            "$1 = (void (*)()) 0x100000 <_start>", "Breakpoint 1, compute", "#0  compute",
        ])
        expectInOrder(o.gdb.stderr, [
            "gdbvmm monitor commands", "info exits",
            "vCPU 0:", "reason", "IO ", "port 0x3f", "IO ", "port 0x3f",
            // QEMU's register dump, then gdbvmm's system registers.
            "CPU#0\nRAX=", "RIP=0000000000100120 RFL=", "CS =0008 0000000000000000 ffffffff 00a09b00 DPL=0 CS64 [-RA]",
            "GDT=     0000000000000500 0000001f", "CR3=0000000000001000", "EFER=0000000000000500", "FCW=037f",
            "dr7", "msr EFER (0xc0000080)", "0x0000000000000500", "APIC_BASE",
            "cs  sel 0x0008", "gdt base 0x0000000000000500", "mp_state runnable",
            // QEMU's info mem, then gdbvmm's mappings with their physical starts.
            "0000000000000000-0000000040000000 0000000040000000 -rw\n",
            "cr3 0x0000000000001000", "virtual start", "0x0000000000000000   0x0000000040000000   0x0000000000000000", "rwx",
            "0000000000000000: 0000000000000000 --P", "address-space: memory", "(prio 0, ram): ram",
            "address-space: I/O", "00000000000003f8-00000000000003ff (prio 0, i/o): Serial16550",
            "gpa: 0x100120",
            "* vCPU 0 (thread 1): CPU#0 [running], long mode, rip 0x0000000000100120",
            "0000000000001000: 0x00000000000020",
            "0000000000100000: 0x31 0xed",
            "guest-physical addresses", "guest-virtual addresses",
            "unknown command: 'bogus'", "gdbvmm monitor commands",
            "exit counters cleared",
            "back at its entry point",
            "ending the VM",
        ])
        #expect(o.vmmStatus == 0, "monitor quit ends the VM with status 0")
    }

    /// With breakpoints kept inserted, gdb sends no new Z0 after the reset: only gdbvmm's
    /// re-planting into the reloaded image can make the breakpoint hit again.
    @Test("monitor system_reset plants the breakpoints again in the reloaded image")
    func resetReplantsBreakpoints() throws {
        let o = try debugSession("demo-elf64", """
            set breakpoint always-inserted on
            break compute
            continue
            monitor system_reset
            monitor xp /4xb 0x100120
            maint packet m100120,4
            maintenance flush register-cache
            print $pc
            continue
            bt 1
            delete
            continue
            """)
        expectInOrder(o.gdb.stdout, ["Breakpoint 1 at 0x100120", "Breakpoint 1, compute",
                                     "received: \"8b45fc89\"", "<_start>", "Breakpoint 1, compute", "#0  compute",
                                     "exited with code 041"])
        // Physical memory holds the int3 again; the `m` reply shows the reloaded original byte.
        expectInOrder(o.gdb.stderr, ["back at its entry point", "0000000000100120: 0xcc 0x45 0xfc 0x89"])
        #expect(o.vmmStatus == 33)
    }

    @Test("extended-remote: run, kill and run again without restarting gdbvmm")
    func extendedRemote() throws {
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", Harness.guest("demo-elf64")])
        let r = Harness.gdb("""
            target extended-remote \(vmm.gdbTarget)
            break compute
            continue
            kill
            run
            print n
            continue
            run
            info threads
            kill
            monitor quit
            """, symbols: Harness.guest("demo-elf64"))
        let status = vmm.wait()
        expectInOrder(r.output, ["Breakpoint 1, compute (n=5)", "[Inferior 1 (Remote target) killed]",
                                 "Breakpoint 1, compute (n=5)", "$1 = 5", "exited with code 041",
                                 "Breakpoint 1, compute (n=5)", "vCPU 0", "killed"])
        #expect(status == 0)
        // The guest ran three times in one gdbvmm.
        #expect(vmm.stdout.components(separatedBy: "gdbvmm demo guest").count - 1 == 3)
    }

    @Test("gdb killed while the guest runs: breakpoints go, the guest pauses, a new gdb continues it")
    func reconnectAfterLostGDB() throws {
        let serial = Harness.serialFile()
        defer { try? FileManager.default.removeItem(atPath: serial) }
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "--serial", "file:" + serial, Harness.guest("demo-elf64")])
        let guest = Harness.guest("demo-elf64")
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-lost-\(UUID().uuidString).gdb")
        try """
            set pagination off
            target remote \(vmm.gdbTarget)
            break spin
            continue
            set var spin_forever = 1
            break checksum
            continue
            """.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let first = Process()
        first.executableURL = URL(fileURLWithPath: Harness.gdbPath ?? "/usr/bin/gdb")
        first.arguments = ["-nx", "-batch", "-x", script.path, guest]
        first.standardOutput = FileHandle.nullDevice
        first.standardError = FileHandle.nullDevice
        try first.run()
        // Once the guest spins (gdb has continued it from spin()), gdb dies without a word.
        let spinning = Harness.waitForLine("spinning", inFile: serial)
        #expect(spinning, "the guest never said it was spinning")
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()

        let second = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            bt 1
            print counter > 0
            set var spin_forever = 0
            continue
            """, symbols: guest)
        let status = vmm.wait()
        // checksum's breakpoint, planted by the first gdb, is gone: the guest runs to its end.
        expectInOrder(second.output, ["spin ()", "$1 = 1", "exited with code 041"])
        #expect(status == 33, "stderr: \(vmm.stderrText)")
    }

    @Test("detach, then a new gdb attaches to the guest that ran on")
    func reattachAfterDetach() throws {
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", Harness.guest("smp")])
        let guest = Harness.guest("smp")
        let first = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            break cpu_work
            continue
            detach
            """, symbols: guest)
        let second = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            print ticks[0] > 1000
            set var stop_all = 1
            continue
            """, symbols: guest)
        let status = vmm.wait()
        expectInOrder(first.output, ["Breakpoint 1, cpu_work (cpu=0)", "detached"])
        expectInOrder(second.output, ["$1 = 1", "exited with code 03"])
        #expect(status == 3)
    }

    @Test("PVH guest: entered with hvm_start_info, debuggable at source level")
    func pvh() throws {
        let plain = Harness.run([Harness.binary, "--cmdline", "root=/dev/null quiet", Harness.guest("pvh")])
        #expect(plain.stdout.contains("pvh guest: start_info magic ok, cmdline: root=/dev/null quiet"))
        #expect(plain.status == 33)
        // pvh64 is an ELF64 image with the PVH note and a 32-bit entry, like Linux's vmlinux.
        let o = try debugSession("pvh64", """
            break pvh_main
            continue
            print/x start_info->magic
            print start_info->memmap_entries > 0
            continue
            """, vmmArguments: ["--cmdline", "hi"])
        expectInOrder(o.gdb.output, ["Breakpoint 1, pvh_main", "$1 = 0x336ec578", "$2 = 1", "exited with code 041"])
        #expect(o.vmmStatus == 33)
    }
}

import Foundation
import Testing

/// Several vCPUs debugged as gdb threads, all-stop.
@Suite("multi-vCPU", .serialized, .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct MultiVCPUTests {
    @Test("threads, breakpoints hit on different vCPUs, thread N, bt", arguments: [2, 4])
    func threads(cpus: Int) throws {
        let o = try debugSession("smp", """
            info threads
            break cpu_work if cpu == \(cpus - 1)
            continue
            print cpu
            thread \(min(3, cpus))
            bt 1
            thread 1
            delete
            break cpu_work if cpu == 0
            continue
            print cpu
            info threads
            delete
            set var stop_all = 1
            continue
            """, vmmArguments: ["--cpus", "\(cpus)"])
        var expected = (1...cpus).map { "Thread \($0) \"vCPU \($0 - 1)\"" }
        expected += ["Thread \(cpus) \"vCPU \(cpus - 1)\" hit Breakpoint 1, cpu_work (cpu=\(cpus - 1))",
                     "$1 = \(cpus - 1)", "[Switching to thread \(min(3, cpus)) (Thread \(min(3, cpus)))]", "#0 ",
                     "[Switching to thread 1 (Thread 1)]",
                     "Thread 1 \"vCPU 0\" hit Breakpoint 2, cpu_work (cpu=0)", "$2 = 0",
                     "exited with code 0\(String(cpus * 2 + 1, radix: 8))"]
        expectInOrder(o.gdb.output, expected)
        #expect(o.vmmStatus == Int32(cpus * 2 + 1), "stderr: \(o.vmmStderr)")
        #expect(o.vmmStdout.contains("smp guest: \(cpus) cpus"))
    }

    @Test("scheduler-locking: stepping one vCPU leaves the others parked")
    func schedulerLocking() throws {
        let o = try debugSession("smp", """
            break cpu_work if cpu == 1
            continue
            delete
            set scheduler-locking on
            set var $before = ticks[0]
            next
            next
            next
            next
            print ticks[0] == $before
            print ticks[1] > 0
            set scheduler-locking off
            set var stop_all = 1
            continue
            """, vmmArguments: ["--cpus", "2"])
        expectInOrder(o.gdb.output, ["Thread 2 \"vCPU 1\" hit Breakpoint 1, cpu_work (cpu=1)",
                                     "$1 = 1", "$2 = 1", "exited with code 05"])
        #expect(o.vmmStatus == 5)
    }

    @Test("Ctrl-C stops every vCPU and reports one of them as a thread")
    func interruptReportsThread() throws {
        let o = try debugSession("smp", """
            break cpu_work
            continue
            delete
            \(Harness.interruptAfterOneSecond)
            continue
            info threads
            set var stop_all = 1
            continue
            """, vmmArguments: ["--cpus", "3"])
        expectInOrder(o.gdb.output, ["hit Breakpoint 1, cpu_work", "received signal SIGINT", "Thread 3 \"vCPU 2\"",
                                     "exited with code 07"])
        #expect(o.vmmStatus == 7)
    }

    @Test("an AP's RIP written while parked: the guest continues from there")
    func writeAPRip() throws {
        let o = try debugSession("smp", """
            break cpu_work if cpu == 1
            continue
            delete
            thread 2
            set var $rip = halt_forever
            thread 1
            \(Harness.interruptAfterOneSecond)
            continue
            thread 2
            info threads
            set var $t1 = ticks[1]
            thread 1
            set var stop_all = 1
            set var cpus_done = 1
            continue
            """, vmmArguments: ["--cpus", "2"])
        expectInOrder(o.gdb.output, ["hit Breakpoint 1, cpu_work (cpu=1)", "[Switching to thread 2 (Thread 2)]",
                                     "received signal SIGINT", "\"vCPU 1\" (halted)", "halt_forever",
                                     "exited with code 05"])
        #expect(o.vmmStatus == 5)
    }

    @Test("multiboot guest with 2 vCPUs: the BSP starts the AP with INIT-SIPI-SIPI")
    func multibootSMP() throws {
        // smp-multiboot is an ELF32 image; gdb cannot take an x86-64 target description with
        // i386 symbols, so this session works on addresses looked up with nm.
        let image = Harness.guest("smp-multiboot")
        let nm = Harness.run(["nm", image]).stdout
        func address(_ symbol: String) -> String {
            nm.split(separator: "\n").first { $0.hasSuffix(" \(symbol)") }.map { "0x" + $0.prefix(8) } ?? "0"
        }
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "--cpus", "2", image])
        let r = Harness.run([Harness.gdbPath ?? "gdb", "-nx", "-batch",
            "-ex", "target remote \(vmm.gdbTarget)",
            "-ex", "info threads",
            "-ex", "python import threading, time; threading.Thread(target=lambda: (time.sleep(3.0), gdb.post_event(lambda: gdb.execute('interrupt'))), daemon=True).start()",
            "-ex", "continue",
            "-ex", "info threads",
            "-ex", "print *(unsigned int *)(\(address("ticks")) + 4) > 0",
            "-ex", "set var *(int *)\(address("stop_all")) = 1",
            "-ex", "continue"])
        let status = vmm.wait()
        expectInOrder(r.output, ["\"vCPU 1\" (waiting for SIPI)", "received signal SIGINT",
                                 "\"vCPU 1\" (running)", "$1 = 1", "exited with code 05"])
        #expect(status == 5, "stderr: \(vmm.stderrText)")
        #expect(vmm.stdout.contains("smp-multiboot: 2 cpus online"))
    }
}

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
            \(Harness.interruptOnceResumed)
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
        let serial = Harness.serialFile()
        defer { try? FileManager.default.removeItem(atPath: serial) }
        // announce_halt prints "parking" and halts in halt_forever.
        let o = try debugSession("smp", """
            break cpu_work if cpu == 1
            continue
            delete
            thread 2
            set var $rip = announce_halt
            thread 1
            \(Harness.interrupt(whenSerial: serial, shows: "parking"))
            continue
            thread 2
            info threads
            set var $t1 = ticks[1]
            thread 1
            set var stop_all = 1
            set var cpus_done = 1
            continue
            """, vmmArguments: ["--cpus", "2", "--serial", "file:" + serial])
        expectInOrder(o.gdb.output, ["hit Breakpoint 1, cpu_work (cpu=1)", "[Switching to thread 2 (Thread 2)]",
                                     "received signal SIGINT", "\"vCPU 1\" (CPU#1 [halted ], long mode)", "halt_forever",
                                     "exited with code 05"])
        #expect(o.vmmStatus == 5)
        #expect(!o.gdb.output.contains("never came"), "pressed only after the AP said it was parking")
    }

    @Test("multiboot (ELF32) guest with 2 vCPUs: the BSP starts the AP with INIT-SIPI-SIPI")
    func multibootSMP() throws {
        let o = try debugSession("smp-multiboot", """
            info threads
            break cpu_work if cpu == 1
            continue
            info threads
            print ticks[1] > 0
            delete
            set var stop_all = 1
            continue
            """, vmmArguments: ["--cpus", "2"])
        expectInOrder(o.gdb.output, ["\"vCPU 1\" (CPU#1 [halted ] waiting for SIPI)", "hit Breakpoint 1, cpu_work (cpu=1)",
                                     "\"vCPU 1\" (CPU#1 [running], 32-bit protected mode)", "$1 = 1", "exited with code 05"])
        #expect(o.vmmStatus == 5, "stderr: \(o.vmmStderr)")
        #expect(o.vmmStdout.contains("smp-multiboot: 2 cpus online"))
    }

    @Test("with the in-kernel irqchip, a guest whose vCPUs all sit in HLT with interrupts off ends with status 0")
    func allHaltedWithIRQChip() throws {
        // Two vCPUs make the multiboot guest use KVM's irqchip, which keeps HLT in the kernel:
        // gdbvmm has to notice the halted guest by asking the vCPUs.
        let o = try debugSession("demo-multiboot32", """
            break guest_exit
            continue
            set var $pc = halt_forever
            continue
            """, vmmArguments: ["--cpus", "2"])
        expectInOrder(o.gdb.output, ["hit Breakpoint 1, guest_exit", "[Inferior 1 (Remote target) exited normally]"])
        #expect(o.vmmStatus == 0)
    }
}

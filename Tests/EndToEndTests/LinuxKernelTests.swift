import Foundation
import Glibc
import Testing

/// A real Linux kernel debugged the way kernel developers do it with `qemu -kernel ... -s -S`:
/// Debian's cloud kernel, booted through its PVH entry, with `gdb vmlinux`.
@Suite("Linux kernel", .serialized, .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct LinuxKernelTests {
    @Test("break start_kernel before boot just works: bt, print init_task.comm, next")
    func breakStartKernel() throws {
        guard let vmlinux = DebianKernel.debugVmlinux else { return }
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "-m", "512M",
                                  "--cmdline", "console=ttyS0 nokaslr noxsave", vmlinux])
        let gdb = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            break start_kernel
            continue
            bt 2
            print init_task.comm
            next
            info registers rip
            monitor quit
            """, symbols: vmlinux, timeout: 300)
        let status = vmm.wait(timeout: 60)
        expectInOrder(gdb.output, ["Breakpoint 1 at 0xffffffff8", "Breakpoint 1, start_kernel () at init/main.c",
                                   "#0  start_kernel", "secondary_startup_64", "$1 = \"swapper",
                                   "rip            0xffffffff8", "<start_kernel+"])
        #expect(!gdb.output.contains("Cannot insert breakpoint"), "gdb output: \(gdb.output)")
        #expect(status == 0, "stderr: \(vmm.stderrText)")
    }

    /// Functions Debian's 6.1 cloud kernel runs once each within its first minute of boot here
    /// (start_kernel and what it calls, setup_arch's among them). Each is set before the first
    /// instruction, when none is mapped.
    static let bootPath = ["start_kernel", "setup_arch", "e820__memory_setup", "setup_command_line",
                           "setup_per_cpu_areas", "build_all_zonelists", "page_alloc_init", "jump_label_init",
                           "setup_log_buf", "vfs_caches_init_early", "sort_main_extable", "trap_init",
                           "mm_init", "ftrace_init", "early_trace_init", "sched_init"]

    @Test("16 breakpoints set before boot all hit; watch max_pfn sees its first write; finish from memblock_alloc_try_nid returns a pointer; Ctrl-C stops in the kernel")
    func sixteenBreakpointsWatchFinishInterrupt() throws {
        guard let vmlinux = DebianKernel.debugVmlinux else { return }
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "-m", "512M", "--cmdline", "console=ttyS0 nokaslr", vmlinux])
        let breaks = Self.bootPath.map { "break \($0)" }.joined(separator: "\n")
        let gdb = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            \(breaks)
            python
            hits = []
            for i in range(\(Self.bootPath.count)):
                gdb.execute("continue", to_string=True)
                hits.append(gdb.selected_frame().name())
            print("HITS " + " ".join(hits))
            end
            delete
            break start_kernel
            monitor system_reset
            continue
            watch max_pfn
            continue
            delete
            break memblock_alloc_try_nid
            continue
            finish
            delete
            python
            import threading
            threading.Timer(3.0, lambda: gdb.post_event(lambda: gdb.execute("interrupt"))).start()
            end
            continue
            python
            f = gdb.selected_frame()
            print("STOPPED-IN %s pc=%#x" % (f.name(), f.pc()))
            end
            monitor quit
            """, symbols: vmlinux, timeout: 600)
        let status = vmm.wait(timeout: 60)
        let hits = gdb.output.split(separator: "\n").first { $0.hasPrefix("HITS ") }.map { $0.dropFirst(5).split(separator: " ").map(String.init) }
        #expect(hits.map(Set.init) == Set(Self.bootPath) && hits?.count == Self.bootPath.count, "gdb output: \(gdb.output.suffix(3000))")
        #expect(hits?.first == "start_kernel")
        #expect(!gdb.output.contains("Cannot insert breakpoint"), "gdb output: \(gdb.output.suffix(3000))")
        expectInOrder(gdb.output, ["Breakpoint 17, start_kernel", "atchpoint 18: max_pfn", "Old value = 0", "New value = ",
                                   "Breakpoint 19, memblock_alloc_try_nid", "Run till exit from",
                                   "Value returned is $", "(void *) 0xffff", "STOPPED-IN "])
        let stopped = gdb.output.split(separator: "\n").first { $0.hasPrefix("STOPPED-IN ") } ?? ""
        #expect(stopped.contains("pc=0xffffffff8") && !stopped.contains("STOPPED-IN None"), "\(stopped)")
        #expect(status == 0, "stderr: \(vmm.stderrText)")
    }

    /// The kernel's own log says what it found: the ACPI tables gdbvmm wrote, both vCPUs in the
    /// MADT, the IOAPIC. (Lines are matched without their timestamps.)
    @Test("2 vCPUs: Linux finds the ACPI tables, both CPUs and the IOAPIC")
    func acpiTables() throws {
        guard let vmlinux = DebianKernel.debugVmlinux else { return }
        let serial = Harness.serialFile()
        defer { try? FileManager.default.removeItem(atPath: serial) }
        let vmm = Process()
        vmm.executableURL = URL(fileURLWithPath: Harness.binary)
        vmm.arguments = ["-m", "512M", "--cpus", "2", "--serial", "file:" + serial,
                         "--cmdline", "console=ttyS0 nokaslr", vmlinux]
        vmm.standardOutput = FileHandle.nullDevice
        vmm.standardError = FileHandle.nullDevice
        try vmm.run()
        defer { kill(vmm.processIdentifier, SIGKILL); vmm.waitUntilExit() }
        let wanted = "ACPI: Using ACPI (MADT) for SMP configuration information"
        // The last of the lines checked below: once it is there, so are the others.
        let last = "smpboot: Allowing 2 CPUs"
        let deadline = Date().addingTimeInterval(240)
        var text = ""
        while Date() < deadline && vmm.isRunning {
            text = (try? String(contentsOfFile: serial, encoding: .utf8)) ?? ""
            if text.contains(last) { break }
            usleep(50_000)
        }
        #expect(text.contains("ACPI: RSDP 0x00000000000E0000"), "serial: \(text.suffix(2000))")
        #expect(text.contains("ACPI: APIC 0x"))
        #expect(text.contains("IOAPIC[0]: apic_id 2, version 17, address 0xfec00000"))
        #expect(text.contains(wanted))
        #expect(text.contains(last))
    }
}

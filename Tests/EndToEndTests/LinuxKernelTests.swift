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
    static let bootPath = ["start_kernel", "setup_arch", "early_cpu_init", "e820__memory_setup", "init_mem_mapping",
                           "paging_init", "setup_command_line", "setup_per_cpu_areas", "build_all_zonelists",
                           "page_alloc_init", "vfs_caches_init_early", "sort_main_extable", "trap_init",
                           "ftrace_init", "early_trace_init", "sched_init"]

    /// gdb Python that continues until `count` different functions have stopped it (some boot
    /// functions run twice, in early and late passes: each counts once), then prints them on a
    /// "HITS " line; `alreadyStopped` counts the function gdb stands in now.
    static func continueUntilEachHits(_ count: Int, alreadyStopped: Bool) -> String {
        """
        python
        hits = \(alreadyStopped ? "[gdb.selected_frame().name()]" : "[]")
        for i in range(\(count * 3)):
            if len(hits) == \(count):
                break
            gdb.execute("continue", to_string=True)
            name = gdb.selected_frame().name()
            if name not in hits:
                hits.append(name)
        print("HITS " + " ".join(hits))
        end
        """
    }

    /// The functions a `continueUntilEachHits` line names, in the order they stopped gdb.
    static func hits(_ output: String) -> [String]? {
        output.split(separator: "\n").first { $0.hasPrefix("HITS ") }.map { $0.dropFirst(5).split(separator: " ").map(String.init) }
    }

    @Test("16 breakpoints set before boot all hit; watch max_pfn sees its first write; finish from memblock_alloc_try_nid returns a pointer; Ctrl-C stops in the kernel")
    func sixteenBreakpointsWatchFinishInterrupt() throws {
        guard let vmlinux = DebianKernel.debugVmlinux else { return }
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "-m", "512M", "--cmdline", "console=ttyS0 nokaslr", vmlinux])
        let breaks = Self.bootPath.map { "break \($0)" }.joined(separator: "\n")
        let gdb = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            \(breaks)
            \(Self.continueUntilEachHits(Self.bootPath.count, alreadyStopped: false))
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
        let hits = Self.hits(gdb.output)
        #expect(hits.map(Set.init) == Set(Self.bootPath) && hits?.count == Self.bootPath.count, "gdb output: \(gdb.output.suffix(3000))")
        #expect(hits?.first == "start_kernel")
        #expect(!gdb.output.contains("Cannot insert breakpoint"), "gdb output: \(gdb.output.suffix(3000))")
        expectInOrder(gdb.output, ["Breakpoint 17, start_kernel", "atchpoint 18: max_pfn", "Old value = 0", "New value = ",
                                   "Breakpoint 19, memblock_alloc_try_nid",
                                   "Value returned is $", "(void *) 0xffff", "STOPPED-IN "])
        let stopped = gdb.output.split(separator: "\n").first { $0.hasPrefix("STOPPED-IN ") } ?? ""
        #expect(stopped.contains("pc=0xffffffff8") && !stopped.contains("STOPPED-IN None"), "\(stopped)")
        #expect(status == 0, "stderr: \(vmm.stderrText)")
    }

    /// The bzImage users actually have: nothing of the kernel is in RAM before its decompressor
    /// writes it out (about 100 s where KVM emulates guest kernel code), yet the sixteen
    /// breakpoints of `bootPath`, set before boot, all hit as software breakpoints.
    @Test("the bzImage: 16 breakpoints set before boot, start_kernel first, all hit once the decompressor has written the kernel out; bt reaches secondary_startup_64")
    func bzImageBreakpointsBeforeBoot() throws {
        guard let bzImage = DebianKernel.bzImage, let vmlinux = DebianKernel.debugVmlinux else { return }
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "-m", "512M", "--append", "console=ttyS0 nokaslr", bzImage])
        let breaks = Self.bootPath.map { "break \($0)" }.joined(separator: "\n")
        let gdb = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            \(breaks)
            continue
            bt
            print init_task.comm
            \(Self.continueUntilEachHits(Self.bootPath.count, alreadyStopped: true))
            monitor quit
            """, symbols: vmlinux, timeout: 600)
        _ = vmm.wait(timeout: 60)
        expectInOrder(gdb.output, ["Breakpoint 1, start_kernel () at init/main.c", "#0  start_kernel",
                                   "secondary_startup_64", "$1 = \"swapper"])
        let hits = Self.hits(gdb.output)
        #expect(hits.map(Set.init) == Set(Self.bootPath) && hits?.count == Self.bootPath.count,
                "gdb output: \(gdb.output.suffix(3000))")
        #expect(!gdb.output.contains("Cannot insert breakpoint") && !gdb.output.contains("SIGTRAP"),
                "gdb output: \(gdb.output.suffix(3000))")
        #expect(!vmm.stderrText.contains("did not start at its link address"), "stderr: \(vmm.stderrText)")
    }

    /// KVM_KVMCLOCK_CTRL: after a stop of over a second (Machine's longStopNanoseconds) gdbvmm
    /// tells KVM the guest was paused, and KVM sets PVCLOCK_GUEST_STOPPED (bit 1) in the kvmclock
    /// page the kernel registered (hv_clock_boot[0] for CPU 0) at the next entry; the kernel's
    /// soft-lockup watchdog clears it and so does not report the stop as a lockup. A short stop
    /// leaves the flag alone. trap_init runs after setup_arch registered kvmclock.
    @Test("a long stop in gdb is announced to the kernel's kvmclock (PVCLOCK_GUEST_STOPPED), a short one is not")
    func longStopIsAnnounced() throws {
        guard let vmlinux = DebianKernel.debugVmlinux else { return }
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "-m", "512M", "--cmdline", "console=ttyS0 nokaslr", vmlinux])
        let gdb = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            break trap_init
            continue
            stepi
            printf "SHORT-STOP flags=%#x\\n", hv_clock_boot[0].pvti.flags
            python
            import time
            time.sleep(2.5)
            end
            stepi
            printf "LONG-STOP flags=%#x\\n", hv_clock_boot[0].pvti.flags
            monitor quit
            """, symbols: vmlinux, timeout: 300)
        _ = vmm.wait(timeout: 60)
        /// The flags byte a tagged line printed (`%#x`: "0" or "0x2"), nil if absent.
        func flags(_ tag: String) -> UInt8? {
            guard let line = gdb.output.split(separator: "\n").first(where: { $0.hasPrefix(tag) }) else { return nil }
            var value = line.dropFirst(tag.count)
            if value.hasPrefix("0x") { value = value.dropFirst(2) }
            return UInt8(value, radix: 16)
        }
        #expect(gdb.output.contains(", trap_init () at"), "gdb output: \(gdb.output.suffix(3000))")
        #expect(flags("SHORT-STOP flags=").map { $0 & 2 == 0 } == true, "gdb output: \(gdb.output.suffix(2000))")
        #expect(flags("LONG-STOP flags=").map { $0 & 2 != 0 } == true, "gdb output: \(gdb.output.suffix(2000))")
    }

    /// The kernel's own log says what it found: the ACPI tables gdbvmm wrote, both vCPUs in the
    /// MADT, the IOAPIC; once it says both CPUs are up, gdb attaches and sees both as threads
    /// inside the kernel. (Lines are matched without their timestamps.)
    @Test("2 vCPUs: Linux finds the ACPI tables, both CPUs and the IOAPIC; gdb then shows both CPUs as threads in the kernel")
    func acpiTablesAndBothCPUs() throws {
        guard let vmlinux = DebianKernel.debugVmlinux else { return }
        let serial = Harness.serialFile()
        defer { try? FileManager.default.removeItem(atPath: serial) }
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-m", "512M", "--cpus", "2", "--serial", "file:" + serial,
                                  "--cmdline", "console=ttyS0 nokaslr", vmlinux])
        let up = "smp: Brought up 1 node, 2 CPUs"
        let deadline = Date().addingTimeInterval(600)
        var text = ""
        while Date() < deadline {
            text = (try? String(contentsOfFile: serial, encoding: .utf8)) ?? ""
            if text.contains(up) { break }
            usleep(100_000)
        }
        #expect(text.contains("ACPI: RSDP 0x00000000000E0000"), "serial: \(text.suffix(2000))")
        #expect(text.contains("ACPI: APIC 0x"))
        #expect(text.contains("IOAPIC[0]: apic_id 2, version 17, address 0xfec00000"))
        #expect(text.contains("ACPI: Using ACPI (MADT) for SMP configuration information"))
        #expect(text.contains(up), "serial: \(text.suffix(2000))")
        let gdb = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            info threads
            python
            for t in gdb.selected_inferior().threads():
                t.switch()
                print("THREAD %d pc=%#x in %s" % (t.num, gdb.selected_frame().pc(), gdb.selected_frame().name()))
            end
            monitor quit
            """, symbols: vmlinux, timeout: 120)
        _ = vmm.wait(timeout: 60)
        let threads = gdb.output.split(separator: "\n").filter { $0.hasPrefix("THREAD ") }
        #expect(threads.count == 2, "gdb output: \(gdb.output)")
        #expect(threads.allSatisfy { $0.contains("pc=0xffffffff8") && !$0.hasSuffix("in None") }, "gdb output: \(gdb.output)")
    }
}

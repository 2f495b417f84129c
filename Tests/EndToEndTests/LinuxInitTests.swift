import Foundation
import Glibc
import Testing

/// Debian's kernel booted all the way to its /init (guests/linux-init in
/// guests/build/initramfs.cpio), through PVH and as a bzImage: the init's exit code arrives as
/// gdbvmm's status, poweroff and reboot end the VM, a line typed on the console reaches it
/// (interrupt-driven serial), and gdb stops at the execve of /init.
///
/// Where guest kernel code is emulated (PLATFORM.md: kvm_pvm hosts, ~1 us per instruction) this
/// boot takes tens of minutes (ftrace's boot-time checks alone run minutes there), so these run
/// only where the kernel runs natively, or when GDBVMM_FULL_LINUX_BOOT=1 asks for them anyway.
@Suite("Linux to /init", .serialized, .enabled(if: LinuxInit.available, "needs /dev/kvm, gdb and a host that runs guest kernel code natively"))
struct LinuxInitTests {
    static let append = "console=ttyS0 nokaslr panic=-1"

    @Test("the init's exit code is gdbvmm's status, through PVH and as a bzImage", arguments: ["vmlinux", "bzImage"])
    func exitStatus(kernel: String) throws {
        guard let image = kernel == "vmlinux" ? DebianKernel.debugVmlinux : DebianKernel.bzImage else { return }
        let r = Harness.run([Harness.binary, "-m", "512M", "--initrd", LinuxInit.initramfs,
                             "--append", Self.append + " gdbvmm_exit=7", image], timeout: LinuxInit.timeout)
        #expect(r.stdout.contains("gdbvmm-init: hello from /init"), "serial: \(r.stdout.suffix(3000))")
        #expect(r.status == 15, "stderr: \(r.stderr)")
    }

    @Test("poweroff ends the VM with 0, reboot with 6", arguments: [("poweroff", Int32(0), "reboot: Power down"),
                                                                       ("reboot", Int32(6), "reboot: Restarting system")])
    func powerOffAndReboot(end: String, status: Int32, line: String) throws {
        guard let vmlinux = DebianKernel.debugVmlinux else { return }
        let r = Harness.run([Harness.binary, "-m", "512M", "--initrd", LinuxInit.initramfs,
                             "--append", Self.append + " gdbvmm_end=\(end)", vmlinux], timeout: LinuxInit.timeout)
        #expect(r.stdout.contains(line), "serial: \(r.stdout.suffix(3000))")
        #expect(r.status == status, "stderr: \(r.stderr)")
    }

    @Test("a line typed on the console reaches /init through the UART's receive interrupt")
    func consoleInput() throws {
        guard let vmlinux = DebianKernel.debugVmlinux else { return }
        let r = Harness.run([Harness.binary, "-m", "512M", "--initrd", LinuxInit.initramfs,
                             "--append", Self.append + " gdbvmm_end=echo", vmlinux],
                            stdin: "hello\r", timeout: LinuxInit.timeout)
        #expect(r.stdout.contains("gdbvmm-init: you typed: hello"), "serial: \(r.stdout.suffix(3000))")
        #expect(r.status == 11, "stderr: \(r.stderr)")
    }

    @Test("gdb: a breakpoint on the execve of /init hits, and the init's exit reaches gdb")
    func breakOnExecveOfInit() throws {
        guard let vmlinux = DebianKernel.debugVmlinux else { return }
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "-m", "512M", "--initrd", LinuxInit.initramfs,
                                  "--append", Self.append + " gdbvmm_exit=3", vmlinux])
        let gdb = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            break kernel_execve
            continue
            print filename
            delete
            continue
            """, symbols: vmlinux, timeout: LinuxInit.timeout)
        let status = vmm.wait(timeout: 60)
        expectInOrder(gdb.output, ["Breakpoint 1, kernel_execve", "= 0x", "\"/init\"", "exited with code 07"])
        #expect(status == 7, "stderr: \(vmm.stderrText)")
    }
}

enum LinuxInit {
    static let initramfs = Harness.guest("initramfs.cpio")
    static let timeout: Double = emulating ? 7200 : 300

    /// The host's KVM emulates guest kernel code (PLATFORM.md).
    static let emulating = FileManager.default.fileExists(atPath: "/sys/module/kvm_pvm")

    static let available: Bool = {
        guard Harness.hasKVM && Harness.hasGDB else { return false }
        if emulating && ProcessInfo.processInfo.environment["GDBVMM_FULL_LINUX_BOOT"] != "1" {
            Harness.warn("Linux-to-/init tests are SKIPPED: this host emulates guest kernel code (kvm_pvm), where the boot takes "
                + "tens of minutes; GDBVMM_FULL_LINUX_BOOT=1 runs them anyway")
            return false
        }
        return true
    }()
}

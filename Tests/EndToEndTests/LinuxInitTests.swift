import Foundation
import Glibc
import Testing

/// Debian's kernel booted all the way to its /init (guests/linux-init in
/// guests/build/initramfs.cpio), in three boots that run side by side: through PVH with gdb (a
/// breakpoint on the execve of /init, a console line typed to /init, its exit code as gdb's and
/// gdbvmm's), as a bzImage ending in reboot (status 6), through PVH ending in poweroff (0).
///
/// Where KVM emulates guest kernel code (PLATFORM.md: kvm_pvm hosts, ~1 us per instruction)
/// one boot takes over half an hour (ftrace's boot-time checks alone about 5 minutes), so
/// these run only where the kernel runs natively, or when GDBVMM_FULL_LINUX_BOOT=1 asks for
/// them anyway (scripts/linux-full-boot, which CI runs).
@Suite("Linux to /init", .enabled(if: LinuxInit.available, "needs /dev/kvm, gdb and a host that runs guest kernel code natively"))
struct LinuxInitTests {
    static let append = "console=ttyS0 nokaslr panic=-1"

    @Test("gdb: a breakpoint on the execve of /init hits; a line typed on the console reaches /init through the UART's receive interrupt; its exit code reaches gdb and is gdbvmm's status")
    func execveConsoleAndExitCode() throws {
        guard let vmlinux = DebianKernel.debugVmlinux else { return }
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "-m", "512M", "--initrd", LinuxInit.initramfs,
                                  "--append", Self.append + " gdbvmm_end=echo", vmlinux], stdin: "hello\r")
        // The kernel also execs /sbin/modprobe (request_module) before /init.
        let gdb = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            break kernel_execve if $_streq(kernel_filename, "/init")
            continue
            print kernel_filename
            delete
            continue
            """, symbols: vmlinux, timeout: LinuxInit.timeout)
        let status = vmm.wait(timeout: 60)
        expectInOrder(gdb.output, ["Breakpoint 1, kernel_execve", "\"/init\"", "exited with code 013"])
        #expect(vmm.stdout.contains("gdbvmm-init: hello from /init"), "serial: \(vmm.stdout.suffix(3000))")
        #expect(vmm.stdout.contains("gdbvmm-init: you typed: hello"), "serial: \(vmm.stdout.suffix(3000))")
        #expect(status == 11, "stderr: \(vmm.stderrText.suffix(3000))")
    }

    @Test("/init ends the VM: the bzImage through reboot (status 6), the vmlinux through PVH and poweroff (status 0)",
          arguments: [("bzImage", "reboot", Int32(6), "reboot: Restarting system"),
                      ("vmlinux", "poweroff", Int32(0), "reboot: Power down")])
    func rebootAndPowerOff(kernel: String, end: String, status: Int32, line: String) throws {
        guard let image = kernel == "bzImage" ? DebianKernel.bzImage : DebianKernel.debugVmlinux else { return }
        let r = Harness.run([Harness.binary, "-m", "512M", "--initrd", LinuxInit.initramfs,
                             "--append", Self.append + " gdbvmm_end=\(end)", image], timeout: LinuxInit.timeout)
        #expect(r.stdout.contains("gdbvmm-init: hello from /init"), "serial: \(r.stdout.suffix(3000))")
        #expect(r.stdout.contains(line), "serial: \(r.stdout.suffix(3000))")
        #expect(r.status == status, "stderr: \(r.stderr.suffix(3000))")
    }
}

enum LinuxInit {
    static let initramfs = Harness.guest("initramfs.cpio")
    static let timeout: Double = emulating ? 3600 : 300

    /// The host's KVM emulates guest kernel code (PLATFORM.md).
    static let emulating = FileManager.default.fileExists(atPath: "/sys/module/kvm_pvm")

    static let available: Bool = {
        guard Harness.hasKVM && Harness.hasGDB else { return false }
        if emulating && ProcessInfo.processInfo.environment["GDBVMM_FULL_LINUX_BOOT"] != "1" {
            Harness.warn("Linux-to-/init tests are SKIPPED here: this host emulates guest kernel code (kvm_pvm), where one "
                + "boot takes over half an hour; scripts/linux-full-boot (GDBVMM_FULL_LINUX_BOOT=1) runs them")
            return false
        }
        return true
    }()
}

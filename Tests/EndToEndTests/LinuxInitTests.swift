import Foundation
import Glibc
import Testing

/// Debian's kernel booted all the way to its /init (guests/linux-init in
/// guests/build/initramfs.cpio), in three boots that run side by side: through PVH with gdb (a
/// breakpoint on the execve of /init, a console line typed to /init, its exit code as gdb's and
/// gdbvmm's), as a bzImage ending in reboot (status 6), through PVH ending in poweroff (0).
///
/// Not where KVM emulates guest kernel code (PLATFORM.md: kvm_pvm hosts): there a stock
/// kernel's user space cannot make a single system call (`syscall` lands on the kernel's entry
/// still in user mode and faults, `int $0x80` raises #UD: PVM delivers both through its own
/// guest ABI), so /init dies at its first one. LinuxInitOnEmulatingHostTests boots to that point
/// there instead, in about 17 minutes: only from scripts/linux-full-boot (GDBVMM_FULL_LINUX_BOOT=1),
/// which CI runs.
@Suite("Linux to /init", .enabled(if: LinuxInit.available(emulating: false), "needs /dev/kvm, gdb and a host that runs guest kernel code natively"))
struct LinuxInitTests {
    static let append = "console=ttyS0 nokaslr panic=-1"

    @Test("gdb: a breakpoint on the execve of /init hits; a line typed on the console reaches /init through the UART's receive interrupt; its exit code reaches gdb and is gdbvmm's status")
    func execveConsoleAndExitCode() throws {
        guard let vmlinux = DebianKernel.debugVmlinux else { return }
        let (gdb, vmm, status) = try LinuxInit.throughInitExecve(vmlinux, end: "echo", stdin: "hello\r")
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

/// Where KVM emulates guest kernel code: the kernel boots to /init (its execve, with gdb), /init
/// faults at its first system call (see LinuxInitTests), and the kernel's panic (`panic=-1`)
/// reboots through the FADT's reset register, which ends the VM with status 6.
@Suite("Linux to /init where KVM emulates guest kernel code", .enabled(if: LinuxInit.available(emulating: true), "needs /dev/kvm, gdb, GDBVMM_FULL_LINUX_BOOT=1 and a host that emulates guest kernel code"))
struct LinuxInitOnEmulatingHostTests {
    @Test("gdb: the breakpoint on the execve of /init hits; /init's first system call faults on this host; the kernel's panic reboots through ACPI: status 6")
    func execveThenPanicReboot() throws {
        guard let vmlinux = DebianKernel.debugVmlinux else { return }
        let (gdb, vmm, status) = try LinuxInit.throughInitExecve(vmlinux, end: "poweroff")
        expectInOrder(gdb.output, ["Breakpoint 1, kernel_execve", "\"/init\"", "exited with code 06"])
        expectInOrder(vmm.stdout, ["Run /init as init process", "Kernel panic - not syncing: Attempted to kill init!"])
        #expect(!vmm.stdout.contains("gdbvmm-init: hello from /init"), "serial: \(vmm.stdout.suffix(3000))")
        #expect(status == 6, "stderr: \(vmm.stderrText.suffix(3000))")
    }
}

enum LinuxInit {
    static let initramfs = Harness.guest("initramfs.cpio")
    static let timeout: Double = emulating ? 3600 : 300

    /// Debian's vmlinux through PVH with gdb attached: a breakpoint on the execve of /init (the
    /// kernel also execs /sbin/modprobe, for request_module, before it), then on to the VM's end.
    static func throughInitExecve(_ vmlinux: String, end: String, stdin: String? = nil) throws
        -> (gdb: Harness.Result, vmm: RunningVMM, status: Int32) {
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "-m", "512M", "--initrd", initramfs,
                                  "--append", LinuxInitTests.append + " gdbvmm_end=\(end)", vmlinux], stdin: stdin)
        let gdb = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            break kernel_execve if $_streq(kernel_filename, "/init")
            continue
            print kernel_filename
            delete
            continue
            """, symbols: vmlinux, timeout: timeout)
        return (gdb, vmm, vmm.wait(timeout: 60))
    }

    /// The host's KVM emulates guest kernel code (PLATFORM.md).
    static let emulating = FileManager.default.fileExists(atPath: "/sys/module/kvm_pvm")

    /// Whether the suite for this kind of host runs: the one for the host we are on; where the
    /// kernel is emulated only when GDBVMM_FULL_LINUX_BOOT=1 asks for the long boot.
    static func available(emulating suite: Bool) -> Bool {
        guard suite == emulating, Harness.hasKVM && Harness.hasGDB else { return false }
        if emulating && ProcessInfo.processInfo.environment["GDBVMM_FULL_LINUX_BOOT"] != "1" {
            Harness.warn("Linux-to-/init test SKIPPED here: this host emulates guest kernel code (kvm_pvm), where Debian's "
                + "kernel takes about 17 minutes to reach /init; scripts/linux-full-boot (GDBVMM_FULL_LINUX_BOOT=1) runs it, CI too")
            return false
        }
        return true
    }
}

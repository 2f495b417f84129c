import Foundation
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
}

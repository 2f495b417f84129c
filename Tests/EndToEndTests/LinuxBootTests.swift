import Foundation
import Glibc
import Testing

/// Booting a Linux bzImage (the `bzimage` guest) the way `qemu -kernel` does: --append,
/// --initrd, the zero page as the guest sees it, and gdb on it.
@Suite("Linux bzImage boot", .serialized, .enabled(if: Harness.hasKVM, "needs /dev/kvm"))
struct LinuxBootTests {
    /// A small initrd the guest reports the first and last bytes of.
    /// What gdbvmm appends to a Linux command line, everywhere and where KVM emulates guest kernel code (the
    /// bzImage guest is a Linux kernel as far as the boot protocol goes).
    static let additions = " reboot=acpi" + (access("/sys/module/kvm_pvm", F_OK) == 0 ? " noxsave clearcpuid=129,137,147,148,151,153,308 cryptomgr.notests" : "")

    static func writeInitrd(_ contents: String = "GDBVMM-INITRD") throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-initrd-\(UUID().uuidString)").path
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("the guest sees the command line, the e820 map and the initrd")
    func bootParams() throws {
        let initrd = try Self.writeInitrd()
        defer { try? FileManager.default.removeItem(atPath: initrd) }
        let r = Harness.run([Harness.binary, "--append", "hello world", "--initrd", initrd, Harness.guest("bzimage")])
        #expect(r.stdout == """
            bzimage guest: loader 0xff, loadflags 0x81
            cmdline: hello world\(Self.additions)
            e820 entries: 5
            initrd: 13 bytes, first 0x47, last 0x44

            """, "stderr: \(r.stderr)")
        #expect(r.status == 33)

        let plain = Harness.run([Harness.binary, "--cmdline=console=ttyS0", Harness.guest("bzimage")])
        #expect(plain.stdout.contains("cmdline: console=ttyS0\(Self.additions)\ne820 entries: 5\ninitrd: none\n"))
        // Parameters the user gave are not given twice.
        let given = Harness.run([Harness.binary, "--append", "noxsave", Harness.guest("bzimage")])
        let emulating = access("/sys/module/kvm_pvm", F_OK) == 0
        #expect(given.stdout.contains(emulating ? "cmdline: noxsave reboot=acpi clearcpuid=129,137,147,148,151,153,308 cryptomgr.notests\n" : "cmdline: noxsave reboot=acpi\n"),
                "stdout: \(given.stdout)")
        #expect(plain.status == 33)
    }

    @Test("power-off and reset through the ACPI tables, as Linux does them, end the VM with 0 and 6",
          arguments: [("acpi=poweroff", Int32(0), "acpi: sleep control register, S5"), ("acpi=reboot", Int32(6), "acpi: reset register")])
    func acpiPowerOffAndReset(argument: String, status: Int32, line: String) {
        let r = Harness.run([Harness.binary, "--append", argument, Harness.guest("bzimage")])
        #expect(r.status == status, "stderr: \(r.stderr)")
        #expect(r.stdout.hasSuffix(line + "\n"), "stdout: \(r.stdout)")
    }

    @Test("a missing or oversized initrd exits 2 with a message")
    func badInitrd() throws {
        let missing = Harness.run([Harness.binary, "--initrd", "/nonexistent/initrd.img", Harness.guest("bzimage")])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("gdbvmm: initrd /nonexistent/initrd.img does not exist"))

        let big = try Self.writeInitrd(String(repeating: "x", count: 3 << 20))
        defer { try? FileManager.default.removeItem(atPath: big) }
        let tooBig = Harness.run([Harness.binary, "-m", "3M", "--initrd", big, Harness.guest("bzimage")])
        #expect(tooBig.status == 2)
        #expect(tooBig.stderr.contains("the initrd is 3 MiB, but only"))
        #expect(tooBig.stderr.contains("give more memory with -m"))

        let elf = Harness.run([Harness.binary, "--initrd", big, Harness.guest("demo-elf64")])
        #expect(elf.status == 2)
        #expect(elf.stderr.contains("--initrd is handed to Linux bzImage and PVH kernels only"))
    }

    @Test("gdb stops at the 64-bit entry with RSI = boot_params and reads the command line",
          .enabled(if: Harness.hasGDB, "needs gdb"))
    func gdbSession() throws {
        let initrd = try Self.writeInitrd()
        defer { try? FileManager.default.removeItem(atPath: initrd) }
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "--append", "hello world", "--initrd", initrd,
                                  Harness.guest("bzimage")])
        // The bzImage has no symbols; its ELF twin has them at the same addresses.
        let gdb = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            info registers rip
            info registers rsi
            x/s *(unsigned int *)($rsi + 0x228)
            break bzimage_main
            continue
            print/x params->hdr.type_of_loader
            print params->e820_entries
            print params->e820_table[4]
            x/s (char *)(unsigned long)params->hdr.cmd_line_ptr
            continue
            """, symbols: Harness.guest("bzimage.elf"))
        let status = vmm.wait()
        expectInOrder(gdb.output, [
            "rip", "0x100200", "<startup_64>",
            "rsi", "0x7000",
            "0x9000:\t\"hello world\(Self.additions)\"",
            "Breakpoint 1 at",
            "Breakpoint 1, bzimage_main (params=0x7000)",
            "$1 = 0xff",
            "$2 = 5",
            "$3 = {addr = 1048576, size = 133169152, type = 1}",
            "\"hello world\(Self.additions)\"",
            "exited with code 041",
        ])
        #expect(status == 33)
        #expect(vmm.stdout.contains("initrd: 13 bytes, first 0x47, last 0x44"))
    }
}

/// The real thing: Debian's cloud kernel (a bzImage), fetched once by scripts/fetch-kernel into
/// .build-kernels/ (ignored by git). Booted with nokaslr, its decompressor (the bzImage's
/// own 64-bit code, entered at startup_64) reads our command line and reports on the serial
/// port. Debian builds without CONFIG_X86_VERBOSE_BOOTUP, so the decompressor never prints
/// "Decompressing Linux..."; its KASLR line is the first thing it says. Decompressing takes
/// longer than this test waits on a host where guest kernel code is emulated (nothing more
/// appears in 100 s on the nested development machine), so that line is all it asserts.
@Suite("Debian kernel", .serialized, .enabled(if: Harness.hasKVM, "needs /dev/kvm"))
struct DebianKernelTests {
    @Test("the decompressor of Debian's cloud kernel runs and reads the command line")
    func decompressorSpeaks() throws {
        guard let kernel = DebianKernel.bzImage else { return }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Harness.binary)
        process.arguments = ["-m", "512M", "--append", "console=ttyS0 earlyprintk=ttyS0 nokaslr", kernel]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        defer {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        // Read the console until the line appears, gdbvmm ends, or 60 s pass.
        let expected = "KASLR disabled: 'nokaslr' on cmdline."
        let deadline = Date().addingTimeInterval(60)
        let fd = out.fileHandleForReading.fileDescriptor
        var console = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while !String(decoding: console, as: UTF8.self).contains(expected) {
            let left = deadline.timeIntervalSinceNow
            guard left > 0, poll(&pfd, 1, Int32(left * 1000)) > 0 else { break }
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { break }
            console += buffer[0..<n]
        }
        let text = String(decoding: console, as: UTF8.self)
        #expect(text.contains(expected), "console after \(Int(60 - deadline.timeIntervalSinceNow)) s:\n\(text)")
        #expect(process.isRunning, "gdbvmm ended early (status \(process.isRunning ? 0 : process.terminationStatus))")
    }
}

import Foundation
import Glibc
import Testing

/// Booting a Linux bzImage (the `bzimage` guest) the way `qemu -kernel` does: --append,
/// --initrd, the zero page as the guest sees it, and gdb on it.
@Suite("Linux bzImage boot", .serialized, .enabled(if: Harness.hasKVM, "needs /dev/kvm"))
struct LinuxBootTests {
    /// A small initrd the guest reports the first and last bytes of.
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
            cmdline: hello world
            e820 entries: 5
            initrd: 13 bytes, first 0x47, last 0x44

            """, "stderr: \(r.stderr)")
        #expect(r.status == 33)

        let plain = Harness.run([Harness.binary, "--cmdline=console=ttyS0", Harness.guest("bzimage")])
        #expect(plain.stdout.contains("cmdline: console=ttyS0\ne820 entries: 5\ninitrd: none\n"))
        #expect(plain.status == 33)
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
            "0x9000:\t\"hello world\"",
            "Breakpoint 1 at",
            "Breakpoint 1, bzimage_main (params=0x7000)",
            "$1 = 0xff",
            "$2 = 5",
            "$3 = {addr = 1048576, size = 133169152, type = 1}",
            "\"hello world\"",
            "exited with code 041",
        ])
        #expect(status == 33)
        #expect(vmm.stdout.contains("initrd: 13 bytes, first 0x47, last 0x44"))
    }
}

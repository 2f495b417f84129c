import Glibc
import Foundation
import Testing

/// gdbvmm's "main job" without gdb: run a guest, see its serial output, get its exit status.
/// Tests that boot a guest need /dev/kvm; those about usage and start-up failures run anywhere.
@Suite("command line", .serialized)
struct CommandLineTests {
    static let needsKVM = Testing.ConditionTrait.enabled(if: Harness.hasKVM, "needs /dev/kvm")

    @Test("ELF64 direct guest prints its banner and exits through port 0xF4 with (v << 1) | 1", needsKVM)
    func elf64Direct() {
        let r = Harness.run([Harness.binary, Harness.guest("demo-elf64")])
        #expect(r.stdout == "gdbvmm demo guest\ndemo guest done\n")
        #expect(r.status == 33)
    }

    @Test("multiboot ELF64 (a.out kludge) guest gets its command line", needsKVM)
    func multibootKludge() {
        let r = Harness.run([Harness.binary, "--cmdline", "console=ttyS0 debug", Harness.guest("demo-multiboot")])
        #expect(r.stdout.contains("gdbvmm demo guest\ncmdline: console=ttyS0 debug\ndemo guest done\n"))
        #expect(r.status == 33)
    }

    @Test("multiboot ELF32 guest runs in 32-bit protected mode", needsKVM)
    func multiboot32() {
        let r = Harness.run([Harness.binary, "-m", "64M", "--cmdline=abc", Harness.guest("demo-multiboot32")])
        #expect(r.stdout.contains("cmdline: abc\n"))
        #expect(r.status == 33)
    }

    @Test("64 vCPUs: the guest's exit ends the process cleanly while the other vCPUs still run", needsKVM,
          arguments: ["demo-elf64", "demo-multiboot"])
    func manyVCPUs(guest: String) {
        for _ in 0..<3 {
            let r = Harness.run([Harness.binary, "--cpus", "64", "--serial", "none", Harness.guest(guest)])
            #expect(r.status == 33)
            #expect(r.stderr.isEmpty, "stderr: \(r.stderr)")
        }
    }

    @Test("all vCPUs halted with interrupts off ends the VM with status 0", needsKVM)
    func halt() {
        let r = Harness.run([Harness.binary, Harness.guest("halt")])
        #expect(r.stdout.contains("halting"))
        #expect(r.status == 0)
    }

    @Test("a triple fault exits 4 and prints the registers", needsKVM)
    func tripleFault() {
        let r = Harness.run([Harness.binary, Harness.guest("fault")])
        #expect(r.status == 4)
        #expect(r.stderr.contains("triple fault"))
        #expect(r.stderr.contains("rip "))
        #expect(r.stderr.contains("cr0 "))
    }

    @Test("the guest's own int3 reaches its own IDT handler", needsKVM)
    func guestInt3() {
        let r = Harness.run([Harness.binary, Harness.guest("trap")])
        #expect(r.stdout == "trap guest\ntrap guest done\n")
        #expect(r.status == 7, "three breakpoints seen; stderr: \(r.stderr)")
    }

    @Test("standard input reaches the guest's serial receiver", needsKVM)
    func consoleInput() {
        let r = Harness.run([Harness.binary, Harness.guest("echo")], stdin: "hello gdbvmm\nignored\n")
        #expect(r.stdout == "echo guest: type a line\nyou typed: hello gdbvmm\n")
        #expect(r.status == 25, "12 characters: (12 << 1) | 1")
    }

    @Test("--serial file: and none", needsKVM)
    func serialDestinations() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-serial-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = Harness.run([Harness.binary, "--serial", "file:\(path)", Harness.guest("demo-elf64")])
        #expect(r.status == 33)
        #expect(r.stdout.isEmpty)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "gdbvmm demo guest\ndemo guest done\n")
        let quiet = Harness.run([Harness.binary, "--serial", "none", Harness.guest("demo-elf64")])
        #expect(quiet.status == 33)
        #expect(quiet.stdout.isEmpty)
    }

    @Test("bad usage exits 2 with a message", arguments: [
        ["--memory", "lots", "x"], ["--bogus", "x"], [], ["-S", "x"], ["--gdb", "udp:1"], ["--cpus", "0", "x"],
        ["--serial", "tty", "x"], ["a", "b"],
    ])
    func badUsage(arguments: [String]) {
        let r = Harness.run([Harness.binary] + arguments)
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("gdbvmm: "))
        #expect(r.stderr.contains("--help"))
    }

    @Test("a missing or unusable KVM device exits 2 and says what to do")
    func missingKVM() throws {
        let missing = Harness.run(["env", "GDBVMM_KVM_DEVICE=/nonexistent/kvm", Harness.binary, Harness.guest("demo-elf64")])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("/nonexistent/kvm does not exist"))
        #expect(missing.stderr.contains("modprobe kvm_intel or kvm_amd"))
        let notKVM = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-not-kvm-\(UUID().uuidString)")
        try Data("x".utf8).write(to: notKVM)
        defer { try? FileManager.default.removeItem(at: notKVM) }
        let wrong = Harness.run(["env", "GDBVMM_KVM_DEVICE=\(notKVM.path)", Harness.binary, Harness.guest("demo-elf64")])
        #expect(wrong.status == 2)
        #expect(wrong.stderr.contains("cannot use \(notKVM.path)"))
        #expect(wrong.stdout.isEmpty)
    }

    @Test("help and version")
    func helpAndVersion() {
        let help = Harness.run([Harness.binary, "--help"])
        #expect(help.status == 0)
        for text in ["--memory", "--gdb", "--wait-gdb", "--serial", "exit status", "(v << 1) | 1"] {
            #expect(help.stdout.contains(text))
        }
        let version = Harness.run([Harness.binary, "--version"])
        #expect(version.status == 0)
        #expect(version.stdout.hasPrefix("gdbvmm "))
    }

    @Test("missing images and too little memory exit 2 before KVM is opened")
    func invalidImagesWithoutKVM() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-images-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = Harness.run([Harness.binary, dir.appendingPathComponent("nope").path])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("does not exist"))
        let directory = Harness.run([Harness.binary, dir.path])
        #expect(directory.status == 2)
        #expect(directory.stderr == "gdbvmm: the guest image \(dir.path) is a directory, not a file gdbvmm can load; give the path of the file itself\n")
        for device in ["/dev/null", "/dev/zero"] {
            let refused = Harness.run([Harness.binary, device])
            #expect(refused.status == 2)
            #expect(refused.stderr.contains("the guest image \(device) is a character device"), "\(refused.stderr)")
        }
        let fifo = dir.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let pipe = Harness.run([Harness.binary, fifo])
        #expect(pipe.status == 2 && pipe.stderr.contains("is a FIFO (named pipe) or a pipe"), "\(pipe.stderr)")
        let initrd = Harness.run([Harness.binary, "--initrd", "/dev/zero", Harness.guest("bzimage")])
        #expect(initrd.status == 2 && initrd.stderr.contains("the initrd /dev/zero is a character device"), "\(initrd.stderr)")
        // 2 GiB of nothing bootable (sparse: no disk space): refused from its first 8 KiB.
        let junk = dir.appendingPathComponent("junk").path
        #expect(FileManager.default.createFile(atPath: junk, contents: nil))
        #expect(truncate(junk, 2 << 30) == 0)
        let huge = Harness.run([Harness.binary, "-m", "3G", junk])
        #expect(huge.status == 2 && huge.stderr.contains("neither ELF nor has a multiboot header"), "\(huge.stderr)")

        let small = Harness.run([Harness.binary, "-m", "1M", Harness.guest("demo-elf64")])
        #expect(small.status == 2)
    }

    @Test("truncated and foreign images exit 2 before anything starts", needsKVM)
    func invalidImages() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-images-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = try Data(contentsOf: URL(fileURLWithPath: Harness.guest("demo-elf64")))
        let truncated = dir.appendingPathComponent("truncated")
        try image.prefix(200).write(to: truncated)
        let t = Harness.run([Harness.binary, truncated.path])
        #expect(t.status == 2)
        #expect(t.stderr.contains("invalid guest image"))
        #expect(t.stdout.isEmpty)

        let text = dir.appendingPathComponent("text")
        try Data("hello, not a kernel\n".utf8).write(to: text)
        let x = Harness.run([Harness.binary, text.path])
        #expect(x.status == 2)
        #expect(x.stderr.contains("invalid guest image"))
    }
}

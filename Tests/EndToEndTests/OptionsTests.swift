import Foundation
import Testing

/// `parseOptions` through the binary (it lives in the executable): every usage error exits 2
/// with its own message, and every valid combination gets past parsing. None of this opens KVM:
/// an accepted command line stops at the missing guest image, or at a KVM device that is not
/// there (GDBVMM_KVM_DEVICE), after the checks the parsed values feed.
@Suite("command-line options")
struct OptionsTests {
    static let memoryHint = "use a number with K, M or G, e.g. 64M or 1G"

    @Test("each usage error exits 2 with its message and the --help hint", arguments: [
        (["--memory", "lots", "x"], "invalid memory size 'lots': \(memoryHint)"),
        (["--memory=0", "x"], "invalid memory size '0': \(memoryHint)"),
        (["-m", "1T", "x"], "invalid memory size '1T': \(memoryHint)"),
        (["-m", "M", "x"], "invalid memory size 'M': \(memoryHint)"),
        (["-m", "-5M", "x"], "invalid memory size '-5M': \(memoryHint)"),
        (["-m", "20000000000G", "x"], "invalid memory size '20000000000G': \(memoryHint)"),
        (["-m"], "-m needs a value"),
        (["x", "--cmdline"], "--cmdline needs a value"),
        (["--cpus", "0", "x"], "invalid --cpus '0': give a number from 1 to 64"),
        (["--cpus=65", "x"], "invalid --cpus '65': give a number from 1 to 64"),
        (["--cpus", "two", "x"], "invalid --cpus 'two': give a number from 1 to 64"),
        (["--gdb", "udp:1"], "invalid --gdb 'udp:1': use tcp:[HOST:]PORT, unix:PATH or stdio"),
        (["--gdb", "tcp:65536", "x"], "invalid --gdb 'tcp:65536': use tcp:[HOST:]PORT, unix:PATH or stdio"),
        (["--gdb", "tcp:localhost:", "x"], "invalid --gdb 'tcp:localhost:': use tcp:[HOST:]PORT, unix:PATH or stdio"),
        (["--gdb=unix:", "x"], "invalid --gdb 'unix:': use tcp:[HOST:]PORT, unix:PATH or stdio"),
        (["--serial", "tty", "x"], "invalid --serial 'tty': use stdio, file:PATH or none"),
        (["--serial", "file:", "x"], "invalid --serial 'file:': use stdio, file:PATH or none"),
        (["--bogus", "x"], "unknown option '--bogus'"),
        (["--bogus=1", "x"], "unknown option '--bogus=1'"),
        (["--help", "-q"], "unknown option '-q'"),
        ([], "no guest image given"),
        (["-m", "64M"], "no guest image given"),
        (["-S", "x"], "-S/--wait-gdb needs a gdb endpoint: add -s or --gdb tcp:PORT"),
        (["a", "b"], "more than one guest image given ('a' and 'b')"),
        (["--timeout", "0", "x"], "invalid --timeout '0': give a number of seconds greater than 0, e.g. 30 or 2.5"),
        (["--timeout=-1", "x"], "invalid --timeout '-1': give a number of seconds greater than 0, e.g. 30 or 2.5"),
        (["--timeout", "1e3", "x"], "invalid --timeout '1e3': give a number of seconds greater than 0, e.g. 30 or 2.5"),
        (["--timeout", "soon", "x"], "invalid --timeout 'soon': give a number of seconds greater than 0, e.g. 30 or 2.5"),
        (["x", "--timeout"], "--timeout needs a value"),
    ])
    func usageError(arguments: [String], message: String) {
        let r = Harness.run([Harness.binary] + arguments)
        #expect(r.status == 2)
        #expect(r.stderr == "gdbvmm: \(message)\nTry 'gdbvmm --help'.\n")
        #expect(r.stdout.isEmpty)
    }

    static let missingGuest = "/nonexistent/gdbvmm-guest"

    @Test("valid combinations get past parsing", arguments: [
        ["-m", "64M", "--cpus", "2", "--cmdline", "console=ttyS0 debug", missingGuest],
        ["--memory=1G", "--cpus=64", "--cmdline=a=b c", missingGuest],
        ["-s", "-S", missingGuest],
        ["--gdb", "tcp:0", "--wait-gdb", missingGuest],
        ["--gdb=tcp:[::1]:1234", missingGuest],
        ["--gdb", "tcp:0.0.0.0:65535", missingGuest],
        ["--gdb", "unix:/tmp/gdbvmm.sock", "--serial", "none", missingGuest],
        ["--gdb", "stdio", "--serial", "file:/tmp/gdbvmm-serial", missingGuest],
        ["--serial=stdio", missingGuest],
        [missingGuest, "-m", "512K", "--cpus", "1"],
        ["--cmdline", "--not-an-option", missingGuest],
        ["--cmdline=", missingGuest],
        ["--timeout", "30", missingGuest],
        ["--timeout=0.25", "-s", missingGuest],
    ])
    func accepted(arguments: [String]) {
        let r = Harness.run([Harness.binary] + arguments)
        #expect(r.status == 2)
        #expect(r.stderr == "gdbvmm: guest image \(Self.missingGuest) does not exist\n")
    }

    @Test("a lone - is a guest image name, not an option")
    func dashIsAnImage() {
        let r = Harness.run([Harness.binary, "-"])
        #expect(r.status == 2)
        #expect(r.stderr == "gdbvmm: guest image - does not exist\n")
    }

    @Test("--help and --version win over a missing guest and other options", arguments: [
        ["--help"], ["-h", "-m", "64M"], ["--version"], ["--version", "--gdb", "tcp:0", "some-guest"],
    ])
    func helpAndVersionAlone(arguments: [String]) {
        let r = Harness.run([Harness.binary] + arguments)
        #expect(r.status == 0)
        #expect(r.stderr.isEmpty)
        if arguments.contains("--version") {
            #expect(r.stdout.hasPrefix("gdbvmm ") && !r.stdout.contains("usage:"))
        } else {
            #expect(r.stdout.hasPrefix("usage: gdbvmm [OPTIONS] GUEST"))
        }
    }

    /// Sizes reach the machine's limits as the bytes they name: below 2M and above 3G are
    /// refused before KVM is opened; sizes in between get as far as opening the KVM device.
    @Test("memory sizes: bytes, K, M and G, checked against 2M and 3G", arguments: [
        ("2097151", "guest memory must be at least 2M"),
        ("2047K", "guest memory must be at least 2M"),
        ("2097152", nil),
        ("2048k", nil),
        ("2M", nil),
        ("3G", nil),
        ("3072m", nil),
        ("3073M", "guest memory is limited to 3G"),
        ("4g", "guest memory is limited to 3G"),
    ] as [(String, String?)])
    func memorySizes(size: String, refusal: String?) throws {
        let image = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-any-\(UUID().uuidString)")
        try Data("not even an image".utf8).write(to: image)
        defer { try? FileManager.default.removeItem(at: image) }
        let r = Harness.run(["env", "GDBVMM_KVM_DEVICE=/nonexistent/kvm", Harness.binary, "-m", size, image.path])
        #expect(r.status == 2)
        if let refusal {
            #expect(r.stderr.contains(refusal), "stderr: \(r.stderr)")
            #expect(!r.stderr.contains("/nonexistent/kvm"))
        } else {
            #expect(r.stderr.contains("/nonexistent/kvm does not exist"), "stderr: \(r.stderr)")
        }
    }

    @Test("--cpus 64 is accepted up to the KVM device")
    func sixtyFourCPUs() throws {
        let image = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-any-\(UUID().uuidString)")
        try Data("not even an image".utf8).write(to: image)
        defer { try? FileManager.default.removeItem(at: image) }
        let r = Harness.run(["env", "GDBVMM_KVM_DEVICE=/nonexistent/kvm", Harness.binary, "--cpus", "64", image.path])
        #expect(r.status == 2)
        #expect(r.stderr.contains("/nonexistent/kvm does not exist"), "stderr: \(r.stderr)")
    }

    @Test("--serial file: opens the path it names")
    func serialFileIsOpened() throws {
        let image = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-any-\(UUID().uuidString)")
        try Data("not even an image".utf8).write(to: image)
        defer { try? FileManager.default.removeItem(at: image) }
        let r = Harness.run([Harness.binary, "--serial", "file:/nonexistent/dir/out", image.path])
        #expect(r.status == 2)
        #expect(r.stderr == "gdbvmm: cannot open serial output file /nonexistent/dir/out: No such file or directory\n")
    }
}

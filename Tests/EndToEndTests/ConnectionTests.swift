import Foundation
import Glibc
import Testing

/// What no client can do to gdbvmm: hold up the attached gdb's replies, the guest's exit, or
/// the refusal of others; and the rules for the sockets gdbvmm serves on.
@Suite("connections and sockets", .serialized, .enabled(if: Harness.hasKVM, "needs /dev/kvm"))
struct ConnectionTests {
    static let refusal = "$E.gdbvmm is already serving another gdb"

    @Test("a packet and a second client in the same poll: the reply still comes, the newcomer is refused")
    func acceptRace() throws {
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "--serial", "none", Harness.guest("demo-elf64")])
        let port = try #require(vmm.port)
        let gdb = try Peer(port: port)
        gdb.packet("?")
        #expect(gdb.read(until: "#").contains("$T05"))
        // Stopped while it sleeps in poll, gdbvmm sees both when it wakes: the `c` and the newcomer.
        let pid = vmm.process.processIdentifier
        try #require(waitUntilSleeping(pid))
        try stopAndWait(pid)
        gdb.packet("c")
        let newcomer = try Peer(port: port)
        newcomer.packet("qSupported")
        kill(pid, SIGCONT)
        #expect(gdb.read(until: "#").contains("$W21"))
        #expect(newcomer.read(until: "#").contains(Self.refusal))
        #expect(vmm.wait(timeout: 20) == 33, "stderr: \(vmm.stderrText)")
        #expect(!vmm.stderrText.contains("warning"))
    }

    @Test("a client that never reads: others are still refused, and the guest's exit ends gdbvmm")
    func neverReadingClient() throws {
        let path = temporarySocketPath()
        let vmm = try LaunchedVMM(["--gdb", "unix:\(path)", "-S", "--serial", "stdio", Harness.guest("echo")])
        let gdb = try Peer(path: path)
        // 48 reads of 64 KiB: 6 MiB of replies (under the 8 MiB limit), far more than the socket
        // holds; then `c`. The echo guest then waits for a line on gdbvmm's stdin. The bytes
        // read do not repeat (written first), so the replies are not run-length encoded.
        let hex = (0..<0x8000).map { String(format: "%02x", $0 & 0xFF) }.joined()
        gdb.send(frame("M400000,8000:" + hex) + frame("M408000,8000:" + hex))
        gdb.send(String(repeating: frame("m400000,10000"), count: 48) + frame("c"))
        let newcomer = try Peer(path: path)
        newcomer.packet("qSupported")
        let asked = Date()
        #expect(newcomer.read(until: "#").contains(Self.refusal))
        #expect(Date().timeIntervalSince(asked) < 5)
        vmm.writeToStdin("hi\n")
        let lineSent = Date()
        #expect(vmm.wait(timeout: 20) == 5, "stderr: \(vmm.stderr)")  // ("hi".count << 1) | 1
        #expect(Date().timeIntervalSince(lineSent) < 5)
        // The exit's W reply could not be delivered: gdb took nothing, and gdbvmm did not wait for it.
        let received = gdb.readToEnd()
        #expect(received.utf8.count < 6 << 20)
        #expect(!received.contains("$W05"))
        #expect(access(path, F_OK) != 0, "the socket file is removed at exit")
    }

    @Test("a client that leaves more than 8 MiB unread is dropped; the next gdb attaches")
    func overflowingClientDropped() throws {
        let path = temporarySocketPath()
        let vmm = try LaunchedVMM(["--gdb", "unix:\(path)", "-S", "--serial", "none", Harness.guest("demo-elf64")])
        let flooder = try Peer(path: path)
        // Bytes that do not repeat first (in two M packets under PacketSize): the replies of
        // zeroed memory would go out run-length encoded, 33 times smaller.
        let hex = (0..<0x8000).map { String(format: "%02x", $0 & 0xFF) }.joined()
        flooder.send(frame("M400000,8000:" + hex) + frame("M408000,8000:" + hex))
        flooder.send(String(repeating: frame("m400000,10000"), count: 100))  // 12.5 MiB of replies
        #expect(vmm.waitForStderr(containing: "MiB of replies unread: dropped its connection"))
        let gdb = try Peer(path: path)
        gdb.packet("?")
        #expect(gdb.read(until: "#").contains("$T05"))
        gdb.packet("c")
        #expect(gdb.read(until: "#").contains("$W21"))
        #expect(vmm.wait(timeout: 20) == 33, "stderr: \(vmm.stderr)")
        withExtendedLifetime(flooder) {}
    }

    @Test("20 flooding refused clients: later ones are still refused, the session is unaffected")
    func floodingRefusedClients() throws {
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "--serial", "none", Harness.guest("demo-elf64")])
        let port = try #require(vmm.port)
        let gdb = try Peer(port: port)
        gdb.packet("?")
        #expect(gdb.read(until: "#").contains("$T05"))
        // More than the 16 refusals gdbvmm keeps in flight; none ever sends a whole packet.
        let flooders = try (0..<20).map { _ in try Peer(port: port) }
        let junk = Array(repeating: UInt8(ascii: "x"), count: 16384)
        func flood() { for flooder in flooders { flooder.sendWithoutWaiting(junk) } }
        for _ in 0..<4 { flood() }
        for _ in 0..<2 {
            let late = try Peer(port: port)
            late.packet("qSupported")
            #expect(late.read(until: "#", whileWaiting: flood).contains(Self.refusal))
        }
        gdb.packet("?")
        #expect(gdb.read(until: "#").contains("$T05"))
        gdb.packet("c")
        #expect(gdb.read(until: "#").contains("$W21"))
        #expect(vmm.wait(timeout: 20) == 33, "stderr: \(vmm.stderrText)")
    }

    @Test("unix socket: a live one is refused with status 2 and keeps serving; removed at exit")
    func liveSocketRefused() throws {
        let path = temporarySocketPath()
        // No -S: the echo guest runs, waiting for a line on stdin.
        let first = try LaunchedVMM(["--gdb", "unix:\(path)", "--serial", "stdio", Harness.guest("echo")])
        let second = Harness.run([Harness.binary, "--gdb", "unix:\(path)", "--serial", "none", Harness.guest("demo-elf64")], timeout: 30)
        #expect(second.status == 2)
        #expect(second.stderr.contains("unix:\(path) is in use: another gdbvmm"), "stderr: \(second.stderr)")
        // The first one serves on.
        let gdb = try Peer(path: path)
        gdb.packet("?")
        #expect(gdb.read(until: "#").contains("$T05"))
        gdb.packet("c")
        first.writeToStdin("hi\n")
        #expect(gdb.read(until: "#").contains("$W05"))
        #expect(first.wait(timeout: 20) == 5, "stderr: \(first.stderr)")
        #expect(access(path, F_OK) != 0, "the socket file is removed at exit")
    }

    @Test("unix socket: a stale one is replaced, the new one is 0600 at umask 000, SIGTERM removes it")
    func staleSocketReplaced() throws {
        let path = temporarySocketPath()
        // A socket file nobody listens on, as a killed gdbvmm leaves it.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = unixAddress(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0)
        close(stale)
        let vmm = try LaunchedVMM(["--gdb", "unix:\(path)", "-S", "--serial", "none", Harness.guest("demo-elf64")], umask: "000")
        var info = stat()
        try #require(lstat(path, &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFSOCK)
        #expect(info.st_mode & 0o777 == 0o600)
        let gdb = try Peer(path: path)
        gdb.packet("?")
        #expect(gdb.read(until: "#").contains("$T05"))
        kill(vmm.pid, SIGTERM)
        #expect(vmm.wait(timeout: 20) == 128 + SIGTERM, "stderr: \(vmm.stderr)")
        #expect(access(path, F_OK) != 0, "the socket file is removed after SIGTERM")
    }

    @Test("unix socket: SIGINT while the guest runs ends gdbvmm with 130 and removes the socket")
    func interruptRemovesSocket() throws {
        let path = temporarySocketPath()
        // No -S: the echo guest runs, waiting for a line that never comes.
        let vmm = try LaunchedVMM(["--gdb", "unix:\(path)", "--serial", "stdio", Harness.guest("echo")])
        #expect(vmm.waitForStdout(containing: "echo guest: type a line"))
        kill(vmm.pid, SIGINT)
        #expect(vmm.wait(timeout: 20) == 128 + SIGINT, "stderr: \(vmm.stderr)")
        #expect(access(path, F_OK) != 0, "the socket file is removed after SIGINT")
    }

    @Test("serving TCP on 0.0.0.0 warns, after the waiting line")
    func nonLoopbackWarning() throws {
        let vmm = try RunningVMM(["--gdb", "tcp:0.0.0.0:0", "-S", "--serial", "none", Harness.guest("demo-elf64")])
        #expect(vmm.endpoint.hasPrefix("tcp:0.0.0.0:"))
        let gdb = try Peer(port: try #require(vmm.port))  // over loopback only
        gdb.packet("c")
        #expect(gdb.read(until: "#").contains("$W21"))
        #expect(vmm.wait(timeout: 20) == 33)
        let lines = vmm.stderrText.split(separator: "\n")
        #expect(lines.first?.hasPrefix("gdbvmm: waiting for gdb on tcp:0.0.0.0:") == true)
        #expect(lines.count > 1 && lines[1].contains("warning: serving gdb on 0.0.0.0, which is not a loopback address"),
                "stderr: \(vmm.stderrText)")
    }
}

// MARK: helpers

/// `$payload#checksum`.
func frame(_ payload: String) -> String {
    "$\(payload)#" + String(format: "%02x", payload.utf8.reduce(UInt8(0)) { $0 &+ $1 })
}

func temporarySocketPath() -> String {
    "/tmp/gdbvmm-test-\(UUID().uuidString.prefix(8)).sock"
}

func unixAddress(_ path: String) -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    // SAFETY: test paths are far shorter than sun_path, leaving its NUL terminator.
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
    }
    return address
}

/// Waits (at most 10 s) until the main thread of `pid`, gdbvmm's controller, sleeps: with the
/// guest stopped and its reply sent, that is in poll(2).
func waitUntilSleeping(_ pid: pid_t) -> Bool {
    let deadline = Date().addingTimeInterval(10)
    while Date() < deadline {
        // The state follows the last ')' (the command name may hold anything).
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        if stat[close...].dropFirst(2).first == "S" { return true }
        sched_yield()
    }
    return false
}

/// Stops a process (SIGSTOP) and returns once the kernel says it is stopped.
func stopAndWait(_ pid: pid_t) throws {
    kill(pid, SIGSTOP)
    var info = siginfo_t()
    // WNOWAIT leaves the state to whoever else waits for the child (Foundation's Process).
    guard waitid(P_PID, id_t(pid), &info, WSTOPPED | WNOWAIT) == 0 else {
        throw HarnessError(message: "waitid: \(String(cString: strerror(errno)))")
    }
}


/// gdbvmm started through `sh` (for a umask), with a pipe on its stdin, and its stdout and
/// stderr collected as they come, so a test can wait for a line without sleeping.
final class LaunchedVMM: @unchecked Sendable {
    let process = Process()
    private let input = Pipe()
    private let condition = NSCondition()
    private var stdoutText = ""
    private var stderrText = ""
    private var open = 2
    private let exited = DispatchSemaphore(value: 0)

    var pid: pid_t { process.processIdentifier }

    /// Starts gdbvmm and returns once it printed its first stderr line (with --gdb on a
    /// socket: `gdbvmm: waiting for gdb on ...`).
    init(_ arguments: [String], umask: String? = nil) throws {
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", (umask.map { "umask \($0) && " } ?? "") + "exec \"$0\" \"$@\"", Harness.binary] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        let exited = self.exited
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        collect(out.fileHandleForReading, into: \.stdoutText)
        collect(err.fileHandleForReading, into: \.stderrText)
        guard waitForStderr(containing: "\n") else {
            process.terminate()
            throw HarnessError(message: "gdbvmm printed no line on stderr")
        }
    }

    private func collect(_ handle: FileHandle, into text: ReferenceWritableKeyPath<LaunchedVMM, String> & Sendable) {
        Thread.detachNewThread { [self] in
            while true {
                let data = handle.availableData
                condition.lock()
                if data.isEmpty { open -= 1 } else { self[keyPath: text] += String(decoding: data, as: UTF8.self) }
                condition.broadcast()
                condition.unlock()
                if data.isEmpty { return }
            }
        }
    }

    private func waitFor(_ text: KeyPath<LaunchedVMM, String>, containing needle: String, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while !self[keyPath: text].contains(needle) {
            if !condition.wait(until: deadline) { return self[keyPath: text].contains(needle) }
        }
        return true
    }

    func waitForStderr(containing needle: String, timeout: Double = 30) -> Bool {
        waitFor(\.stderrText, containing: needle, timeout: timeout)
    }

    func waitForStdout(containing needle: String, timeout: Double = 30) -> Bool {
        waitFor(\.stdoutText, containing: needle, timeout: timeout)
    }

    func writeToStdin(_ text: String) {
        input.fileHandleForWriting.write(Data(text.utf8))
    }

    var stderr: String {
        condition.lock()
        defer { condition.unlock() }
        return stderrText
    }

    /// Waits for gdbvmm to end (killing it after `timeout`) and for its output to be read.
    func wait(timeout: Double = 60) -> Int32 {
        var status: Int32 = -1
        if exited.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            exited.wait()
        } else {
            status = process.terminationStatus
        }
        condition.lock()
        while open > 0 { condition.wait() }
        condition.unlock()
        return status
    }

    deinit {
        if process.isRunning { process.terminate() }
    }
}

import Foundation
import Glibc
import Testing

/// Paths and prerequisites shared by the end-to-end tests, which run the built gdbvmm binary
/// against the guests in guests/ and drive the real gdb.
enum Harness {
    static let repository: URL = {
        if let override = ProcessInfo.processInfo.environment["GDBVMM_REPOSITORY"] {
            return URL(fileURLWithPath: override)
        }
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    /// The gdbvmm built next to this test bundle (`swift test` builds it: the test target
    /// depends on it), or $GDBVMM_BINARY.
    static let binary: String = {
        if let override = ProcessInfo.processInfo.environment["GDBVMM_BINARY"] { return override }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        for _ in 0..<6 {
            dir.deleteLastPathComponent()
            let candidate = dir.appendingPathComponent("gdbvmm").path
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue {
                return candidate
            }
        }
        return repository.appendingPathComponent(".build/debug/gdbvmm").path
    }()

    static let hasKVM: Bool = {
        let ok = access("/dev/kvm", R_OK | W_OK) == 0
        if !ok { warn("/dev/kvm is missing or not accessible: end-to-end tests that boot guests are SKIPPED") }
        return ok
    }()

    /// gdb from $GDBVMM_TEST_GDB (a path, e.g. the gdb 18 that scripts/newer-debuggers
    /// installs, so the whole suite runs against it), else the first on PATH.
    static let gdbPath: String? = {
        if let chosen = ProcessInfo.processInfo.environment["GDBVMM_TEST_GDB"], !chosen.isEmpty {
            if access(chosen, X_OK) == 0 { return chosen }
            warn("GDBVMM_TEST_GDB=\(chosen) is not an executable: end-to-end tests that drive gdb are SKIPPED")
            return nil
        }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/gdb"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        warn("gdb is not installed: end-to-end tests that drive gdb are SKIPPED (apt-get install -y gdb)")
        return nil
    }()

    static var hasGDB: Bool { gdbPath != nil }

    /// gdb script lines that press Ctrl-C (`interrupt`) during the next `continue`, once the
    /// guest has written `line` to its serial port (gdbvmm started with `--serial file:PATH`).
    /// Batch gdb runs commands synchronously, so a Python thread watches the file and posts the
    /// interrupt. The guest must write the line only after that `continue`. If the line never
    /// comes, gdb says so and presses Ctrl-C anyway, so the test fails instead of hanging.
    static func interrupt(whenSerial path: String, shows line: String, timeout: Double = 60) -> String {
        """
        python
        import threading, time
        def interrupt_when_seen():
            deadline = time.monotonic() + \(timeout)
            seen = False
            while not seen and time.monotonic() < deadline:
                try:
                    with open("\(path)") as serial:
                        seen = "\(line)" in serial.read().splitlines()
                except FileNotFoundError:
                    pass
                if not seen:
                    time.sleep(0.01)
            if not seen:
                gdb.post_event(lambda: gdb.write("*** serial line '\(line)' never came ***\\n"))
            gdb.post_event(lambda: gdb.execute("interrupt"))
        threading.Thread(target=interrupt_when_seen, daemon=True).start()
        end
        """
    }

    /// gdb script lines that press Ctrl-C as soon as gdb has resumed the target for the next
    /// `continue` (its resume packet is on the wire before the interrupt): for tests that need
    /// the guest running, not any particular progress.
    static let interruptOnceResumed = """
        python
        def interrupt_once_resumed(event):
            gdb.events.cont.disconnect(interrupt_once_resumed)
            gdb.post_event(lambda: gdb.execute("interrupt"))
        gdb.events.cont.connect(interrupt_once_resumed)
        end
        """

    /// A fresh path for `--serial file:`, removed by the caller.
    static func serialFile() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-serial-\(UUID().uuidString)").path
    }

    /// Waits until `line` is one of the lines in the file at `path`; false after `timeout`.
    static func waitForLine(_ line: String, inFile path: String, timeout: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: path, encoding: .utf8),
               text.split(separator: "\n").contains(Substring(line)) {
                return true
            }
            usleep(10_000)
        }
        return false
    }

    static func warn(_ message: String) {
        FileHandle.standardError.write(Data("\n*** WARNING: \(message) ***\n\n".utf8))
    }

    /// Builds guests/ once per test process (make is incremental and quick).
    static let guestsBuilt: Bool = {
        let result = run(["make", "-s", "-C", repository.appendingPathComponent("guests").path], timeout: 300)
        if result.status != 0 { warn("building guests failed:\n\(result.output)") }
        return result.status == 0
    }()

    static func guest(_ name: String) -> String {
        _ = guestsBuilt
        return repository.appendingPathComponent("guests/build/\(name)").path
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var output: String { stdout + stderr }
    }

    /// Runs a command to completion (killing it after `timeout` seconds).
    static func run(_ arguments: [String], stdin: String? = nil, timeout: Double = 120) -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.currentDirectoryURL = repository
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        do { try process.run() } catch { return Result(status: -1, stdout: "", stderr: "\(error)") }
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try? input.fileHandleForWriting.close()
        let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        // Read both pipes concurrently so neither can fill up and block the child.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        killer.cancel()
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Runs gdb (`gdbPath`, or the one given) in batch mode on `commands` (one per line), with
    /// the guest's symbols loaded.
    static func gdb(_ commands: String, symbols: String, timeout: Double = 120, using gdb: String? = nil) -> Result {
        let script = FileManager.default.temporaryDirectory
            .appendingPathComponent("gdbvmm-e2e-\(UUID().uuidString).gdb")
        try? ("set pagination off\nset confirm off\n" + commands + "\n").write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        return run([gdb ?? gdbPath ?? "gdb", "-nx", "-batch", "-x", script.path, symbols], timeout: timeout)
    }
}

/// A gdbvmm serving gdb on a socket: started with `--gdb tcp:0` (or unix:), its endpoint read
/// from the one line it prints to stderr before accepting, so there is no race and no sleep.
final class RunningVMM {
    let process = Process()
    let endpoint: String
    private let errPipe = Pipe()
    private let outPipe = Pipe()
    private(set) var stderrText = ""
    private var stdoutData = Data()
    private let readers = DispatchGroup()

    /// `stdin`: what the guest's console receives (written at once, then end of file).
    init(_ arguments: [String], stdin: String? = nil) throws {
        process.executableURL = URL(fileURLWithPath: Harness.binary)
        process.arguments = arguments
        process.standardError = errPipe
        process.standardOutput = outPipe
        let input = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try process.run()
        if let stdin {
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try? input.fileHandleForWriting.close()
        }
        // Read stderr up to the first newline: the "waiting for gdb" line.
        let fd = errPipe.fileHandleForReading.fileDescriptor
        var line = [UInt8]()
        var byte: UInt8 = 0
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while line.last != UInt8(ascii: "\n") {
            guard poll(&pfd, 1, 30_000) > 0, read(fd, &byte, 1) == 1 else { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        stderrText = text
        guard let range = text.range(of: "gdbvmm: waiting for gdb on ") else {
            process.terminate()
            throw HarnessError(message: "gdbvmm did not announce its endpoint; stderr: \(text)")
        }
        endpoint = String(text[range.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
        readers.enter()
        let errHandle = errPipe.fileHandleForReading
        let outHandle = outPipe.fileHandleForReading
        nonisolated(unsafe) let me = self
        DispatchQueue.global().async {
            let rest = errHandle.readDataToEndOfFile()
            me.stderrText += String(decoding: rest, as: UTF8.self)
            me.readers.leave()
        }
        readers.enter()
        DispatchQueue.global().async {
            me.stdoutData = outHandle.readDataToEndOfFile()
            me.readers.leave()
        }
    }

    /// The `target remote` argument for gdb.
    var gdbTarget: String {
        if endpoint.hasPrefix("tcp:") { return String(endpoint.dropFirst(4)) }
        if endpoint.hasPrefix("unix:") { return String(endpoint.dropFirst(5)) }
        return endpoint
    }

    var port: UInt16? { endpoint.split(separator: ":").last.flatMap { UInt16($0) } }

    /// Waits for gdbvmm to end (killing it after `timeout`); returns its exit status.
    func wait(timeout: Double = 60) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            readers.wait()
            return -1
        }
        process.waitUntilExit()
        readers.wait()
        return process.terminationStatus
    }

    var stdout: String { String(decoding: stdoutData, as: UTF8.self) }

    deinit {
        if process.isRunning { process.terminate() }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

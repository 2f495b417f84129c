import Foundation
import Glibc

/// gdb's MI interpreter driven the way an IDE drives it: one command at a time, each with a
/// numeric token, waiting for its `TOKEN^` result record, and for `*stopped` after a resume
/// (with mi-async on gdb answers `^running` at once and takes the next command while the
/// target runs, so an IDE waits for the stop before it asks for frames).
final class MIDriver {
    let process = Process()
    private let input = Pipe(), output = Pipe()
    private var buffer = [UInt8]()
    private var token = 100
    /// Everything gdb printed, for failure messages.
    private(set) var transcript = ""
    private var finished = false

    init(gdb: String, arguments: [String] = []) throws {
        process.executableURL = URL(fileURLWithPath: gdb)
        process.arguments = ["-nx", "--interpreter=mi2"] + arguments
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        // A gdb that died must fail the test, not kill the test process with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        try process.run()
        _ = readUntil { $0.hasPrefix("(gdb)") }
    }

    deinit {
        if process.isRunning { process.terminate() }
    }

    /// Sends one command; returns its result record (`^done...`, `^error...`, ...), or "" when
    /// none came within `timeout` seconds.
    @discardableResult
    func command(_ text: String, timeout: Double = 60) -> String {
        token += 1
        let tag = String(token)
        transcript += "-> \(tag)\(text)\n"
        send("\(tag)\(text)\n")
        return readUntil(timeout: timeout) { $0.hasPrefix(tag + "^") }.last ?? ""
    }

    /// Waits for the next `*stopped` record; returns it ("" on timeout).
    func waitForStop(timeout: Double = 60) -> String {
        readUntil(timeout: timeout) { $0.hasPrefix("*stopped") }.last ?? ""
    }

    /// Reads lines until one satisfies `done` (returned last); on timeout the last is not it.
    private func readUntil(timeout: Double = 60, _ done: (String) -> Bool) -> [String] {
        let deadline = Date().addingTimeInterval(timeout)
        let fd = output.fileHandleForReading.fileDescriptor
        var lines: [String] = []
        while true {
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                transcript += line + "\n"
                lines.append(line)
                if done(line) { return lines }
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return lines + [""] }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(left * 1000) + 1) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = read(fd, &chunk, chunk.count)
            guard n > 0 else { return lines + [""] }
            buffer += chunk[0..<n]
        }
    }

    private func send(_ text: String) {
        guard !finished else { return }
        let bytes = Array(text.utf8)
        // SAFETY: write(2) only reads count bytes of the buffer.
        _ = bytes.withUnsafeBytes { write(input.fileHandleForWriting.fileDescriptor, $0.baseAddress, $0.count) }
    }

    /// Ends gdb (once; later calls do nothing).
    func finish() {
        send("-gdb-exit\n")
        guard !finished else { return }
        finished = true
        try? input.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { process.terminate() }
    }
}

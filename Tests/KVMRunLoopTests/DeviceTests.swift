import Synchronization
import Dispatch
import Foundation
import Testing
@testable import KVMRunLoop
#if canImport(Glibc)
import Glibc
#endif

@Suite struct SerialTests {
    let sink = CollectingSink()
    let serial: Serial16550
    let bus: PortBus

    init() {
        serial = Serial16550(sink: sink)
        bus = PortBus(devices: [(0x3F8...0x3FF, serial)])
    }

    func out(_ offset: UInt16, _ value: UInt32, size: Int = 1) -> DeviceEffect {
        bus.write(port: 0x3F8 + offset, size: size, value: value)
    }

    func inb(_ offset: UInt16) -> UInt32 { bus.read(port: 0x3F8 + offset, size: 1) }

    @Test func transmitReachesTheSink() {
        for byte in "hi\n".utf8 { #expect(out(0, UInt32(byte)) == .none) }
        #expect(sink.text == "hi\n")
    }

    @Test func lineStatusSaysReady() {
        #expect(inb(5) == 0x60)
        serial.receive([0x41, 0x42])
        #expect(inb(5) == 0x61)
        #expect(inb(0) == 0x41)
        #expect(inb(5) == 0x61)
        #expect(inb(0) == 0x42)
        #expect(inb(5) == 0x60)
        #expect(inb(0) == 0)  // empty: reads 0
    }

    @Test func divisorLatchRoundTrip() {
        #expect(out(3, 0x83) == .none)  // DLAB, 8N1
        _ = out(0, 0x01)
        _ = out(1, 0x00)
        #expect(inb(0) == 0x01 && inb(1) == 0x00)
        _ = out(0, 0x34)
        _ = out(1, 0x12)
        #expect(inb(0) == 0x34 && inb(1) == 0x12)
        _ = out(3, 0x03)
        #expect(inb(3) == 0x03)
        #expect(sink.bytes.isEmpty)  // divisor writes are not output
        _ = out(1, 0x00)
        #expect(inb(1) == 0x00)  // IER, not DLM
    }

    @Test func scratchAndModemControl() {
        _ = out(7, 0x5A)
        #expect(inb(7) == 0x5A)
        _ = out(4, 0x0B)
        #expect(inb(4) == 0x0B)
        #expect(inb(6) == 0xB0)  // DCD|DSR|CTS
    }

    @Test func loopback() {
        _ = out(4, 0x1A)  // LOOP | OUT2 | RTS, as Linux's 8250 probe does
        #expect(inb(6) & 0xF0 == 0x90)  // DCD | CTS
        _ = out(0, 0x55)
        #expect(sink.bytes.isEmpty)
        #expect(inb(5) & 1 == 1)
        #expect(inb(0) == 0x55)
        _ = out(4, 0x00)
        _ = out(0, 0x56)
        #expect(sink.bytes == [0x56])
    }

    @Test func interruptIdentification() {
        #expect(inb(2) == 0x01)
        _ = out(2, 0x07)  // enable and clear FIFOs
        #expect(inb(2) == 0xC1)
        _ = out(1, 0x01)  // receive-data interrupt
        serial.receive([7])
        #expect(inb(2) == 0xC4)
        _ = inb(0)
        #expect(inb(2) == 0xC1)
        _ = out(1, 0x02)  // THR-empty interrupt: pending once enabled, cleared by reading IIR
        #expect(inb(2) == 0xC2)
        #expect(inb(2) == 0xC1)
        _ = out(0, 0x41)
        #expect(inb(2) == 0xC2)
    }

    @Test("The interrupt line follows IIR, gated by OUT2, as Linux's interrupt-driven 8250 driver needs")
    func interruptLine() {
        let levels = Mutex<[Bool]>([])
        serial.connect { high in levels.withLock { $0.append(high) } }
        func line() -> [Bool] { levels.withLock { let l = $0; $0.removeAll(); return l } }
        _ = out(1, 0x01)
        serial.receive([1])
        #expect(line() == [], "without OUT2 the line stays low")
        _ = out(4, 0x08)               // OUT2
        #expect(line() == [true], "received data pending")
        _ = inb(0)
        #expect(line() == [false], "read: nothing pending")
        _ = out(1, 0x03)               // and THR empty
        #expect(line() == [true])
        #expect(inb(2) == 0x02)        // reading IIR clears the THR-empty condition
        #expect(line() == [false])
        _ = out(0, 0x41)               // each byte sent leaves THR empty again: a new edge
        #expect(line() == [true])
        serial.receive([2])
        #expect(inb(2) == 0x04, "received data outranks THR empty")
        _ = inb(0)
        #expect(inb(2) == 0x02)
        #expect(line() == [false])
        _ = out(1, 0x01)
        serial.receive([3])
        #expect(line() == [true])
        _ = out(4, 0x18)               // loopback keeps the interrupt inside the chip
        #expect(line() == [false])
        _ = out(4, 0x08)
        _ = out(1, 0x00)               // disabling the interrupts lowers the line too
        #expect(line() == [true, false])
    }

    @Test func wideAccessesSplitIntoRegisters() {
        _ = out(0, 0x0F41, size: 2)  // 'A' to THR, 0x0F to IER
        #expect(sink.bytes == [0x41])
        #expect(inb(1) == 0x0F)
        #expect(bus.read(port: 0x3FD, size: 2) == 0xB060)  // LSR, MSR
    }

    @Test func receiveOverrunIsBounded() {
        serial.receive([UInt8](repeating: 1, count: Serial16550.receiveLimit + 10))
        #expect(inb(5) == 0x63)  // DR | OE
        #expect(inb(5) == 0x61)  // OE clears on read
    }

    @Test func concurrentWritersLoseNothing() {
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            for _ in 0..<500 { _ = bus.write(port: 0x3F8, size: 1, value: UInt32(0x30 + thread)) }
        }
        let bytes = sink.bytes
        #expect(bytes.count == 2000)
        for thread in 0..<4 { #expect(bytes.filter { $0 == UInt8(0x30 + thread) }.count == 500) }
    }
}

@Suite struct MiscDeviceTests {
    @Test func debugExitStatus() {
        #expect(ISADebugExit.status(for: 0) == 1)
        #expect(ISADebugExit.status(for: 1) == 3)
        #expect(ISADebugExit.status(for: 0x10) == 0x21)
        #expect(ISADebugExit.status(for: 0xFFFF_FFFF) == -1)
        let bus = PortBus(devices: [(0xF4...0xF4, ISADebugExit())])
        #expect(bus.write(port: 0xF4, size: 1, value: 0x31) == .exit(status: 0x63))
        #expect(bus.write(port: 0xF4, size: 1, value: 0x1FF) == .exit(status: 0x1FF))  // masked to 0xFF first
        #expect(bus.write(port: 0xF4, size: 4, value: 0x100) == .exit(status: 0x201))
    }

    @Test func debugConsole() {
        let sink = CollectingSink()
        let bus = PortBus(devices: [(0xE9...0xE9, DebugConsole(sink: sink))])
        #expect(bus.read(port: 0xE9, size: 1) == 0xE9)
        for byte in "ok".utf8 { #expect(bus.write(port: 0xE9, size: 1, value: UInt32(byte)) == .none) }
        #expect(sink.text == "ok")
    }

    @Test func powerOff() {
        let bus = PortBus(devices: [(0x604...0x605, PowerOff())])
        #expect(bus.write(port: 0x604, size: 2, value: 0x2000) == .powerOff)
        #expect(bus.write(port: 0x604, size: 2, value: 0x3400) == .powerOff)  // any SLP_TYP
        #expect(bus.write(port: 0x604, size: 2, value: 0x0001) == .none)
        #expect(bus.write(port: 0x605, size: 1, value: 0x20) == .powerOff)
        #expect(bus.write(port: 0x604, size: 1, value: 0x20) == .none)
        #expect(bus.read(port: 0x604, size: 2) == 0)
    }

    @Test func unclaimedPorts() {
        let bus = PortBus(devices: [(0xF4...0xF4, ISADebugExit())])
        #expect(bus.read(port: 0x80, size: 1) == 0xFF)
        #expect(bus.read(port: 0x80, size: 2) == 0xFFFF)
        #expect(bus.read(port: 0x80, size: 4) == 0xFFFF_FFFF)
        #expect(bus.write(port: 0x80, size: 1, value: 0x12) == .none)
        #expect(bus.unclaimedAccesses == 4)
        #expect(bus.isClaimed(0xF4))
        #expect(!bus.isClaimed(0xF5))
        #expect(bus.read(port: 0xF4, size: 1) == 0)
        #expect(bus.unclaimedAccesses == 4)
    }

    @Test func fileDescriptorSinkWritesEverything() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let payload = (0..<10_000).map { UInt8(truncatingIfNeeded: $0) }
        // A pipe holds 64 KiB, so this completes without a reader.
        FileDescriptorSink(fileDescriptor: fds[1]).write(payload)
        close(fds[1])
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        #expect(received == payload)
    }

    @Test func fileDescriptorSinkSurvivesAClosedDescriptor() {
        // A descriptor that is not open (never a closed number: another test may reuse it).
        let sink = FileDescriptorSink(fileDescriptor: -1)
        #expect(sink.dropped == 0 && sink.lastError == nil)
        sink.write([1, 2, 3])
        #expect(sink.dropped == 3)
        #expect(sink.lastError == EBADF)
        sink.write([4, 5])
        #expect(sink.dropped == 5, "each failed write counts what it gave up")
    }

    @Test func fileDescriptorSinkSurvivesAReaderThatClosed() throws {
        // gdbvmm ignores SIGPIPE, so a reader gone shows up as EPIPE; the test process must too.
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[1]) }
        let sink = FileDescriptorSink(fileDescriptor: fds[1])
        sink.write([1, 2])
        #expect(sink.dropped == 0 && sink.lastError == nil, "the reader is still there")
        close(fds[0])
        sink.write(Array(repeating: 7, count: 100))
        #expect(sink.dropped == 100)
        #expect(sink.lastError == EPIPE)
    }
}

/// The console buffer between vCPUs and a reader that may not keep up.
@Suite("buffered console output")
struct BufferedSinkTests {
    /// A destination that takes nothing until released, then records what it got.
    final class StuckSink: ByteSink, @unchecked Sendable {
        // SAFETY (Sendable): `received` and `released` are guarded by `cond`.
        private let cond = NSCondition()
        private var released = false
        private var received: [UInt8] = []

        func write(_ bytes: [UInt8]) {
            cond.lock()
            while !released { cond.wait() }
            received += bytes
            cond.unlock()
        }

        func release() { cond.lock(); released = true; cond.broadcast(); cond.unlock() }
        var bytes: [UInt8] { cond.lock(); defer { cond.unlock() }; return received }
    }

    @Test("a reader that never reads: writes never block, the excess is dropped and counted, flush gives up")
    func stuckReader() {
        let stuck = StuckSink()
        let sink = BufferedSink(stuck, capacity: 100)
        let start = Date()
        // The writer thread takes up to one chunk into the stuck write; then 100 more fit.
        for i in 0..<50 { sink.write([UInt8](repeating: UInt8(i), count: 10)) }
        #expect(Date().timeIntervalSince(start) < 1, "writes must not wait for the reader")
        #expect(sink.dropped >= 300 && sink.dropped <= 400, "dropped \(sink.dropped)")
        let flushStart = Date()
        sink.flush(timeout: 0.2)
        let waited = Date().timeIntervalSince(flushStart)
        #expect(waited >= 0.2 && waited < 2, "flush waited \(waited) s for a reader that made no progress")
        // Released, the reader gets everything that was kept, in order.
        stuck.release()
        sink.flush(timeout: 5)
        #expect(stuck.bytes.count == 500 - Int(sink.dropped))
        #expect(stuck.bytes == stuck.bytes.sorted())
    }

    @Test("a reader that keeps up gets every byte, and flush waits for it")
    func everyByte() {
        let stuck = StuckSink()
        stuck.release()
        let sink = BufferedSink(stuck, capacity: 1 << 20)
        var expected: [UInt8] = []
        for i in 0..<1000 {
            let chunk = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 7)
            expected += chunk
            sink.write(chunk)
        }
        sink.flush(timeout: 5)
        #expect(stuck.bytes == expected)
        #expect(sink.dropped == 0)
    }
}

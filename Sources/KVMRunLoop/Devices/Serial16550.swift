import Synchronization

/// A 16550A UART as a guest driver sees it: transmitted bytes go to a sink immediately, so the
/// transmitter is always empty (LSR = THRE|TEMT); received bytes are queued by `receive(_:)`
/// and read from RBR. Registers a driver probes (scratch, divisor latch, loopback, FIFO
/// identification in IIR) behave as on the chip, so Linux's 8250 driver and the usual polling
/// `outb` loops work. With an interrupt line (`connect(interruptLine:)`, IRQ 4 on the in-kernel
/// irqchip) it raises received-data and transmitter-empty interrupts as a PC's COM1 does (only
/// while MCR.OUT2 gates the line through), so an interrupt-driven console, a shell on
/// /dev/ttyS0, works. Conventionally at ports 0x3F8-0x3FF (COM1).
public final class Serial16550: PortDevice {
    /// The first of the eight ports.
    public let base: UInt16
    private let sink: any ByteSink
    private let state = Mutex(Registers())
    /// Set before the first vCPU runs; called under the state lock so that line changes from
    /// different vCPU threads reach the irqchip in the order the register accesses happened.
    private nonisolated(unsafe) var interruptLine: (@Sendable (Bool) -> Void)?

    /// The ISA interrupt COM1 raises.
    public static let irq: UInt32 = 4

    /// Bytes received but not read by the guest beyond this are dropped (and flagged as an
    /// overrun in LSR), so input the guest never reads cannot grow without bound.
    public static let receiveLimit = 64 * 1024

    public init(base: UInt16 = 0x3F8, sink: any ByteSink) {
        self.base = base
        self.sink = sink
    }

    /// Wires the UART's interrupt output; `setLevel(true)` raises the line. Call it before any
    /// vCPU runs.
    public func connect(interruptLine setLevel: @escaping @Sendable (Bool) -> Void) {
        interruptLine = setLevel
    }

    /// Queues bytes for the guest to read (typed on an interactive console).
    public func receive(_ bytes: [UInt8]) {
        state.withLock { registers in
            registers.enqueue(bytes)
            updateLine(&registers)
        }
    }

    /// Drives the interrupt line to what the registers now say, if it changed.
    private func updateLine(_ registers: inout Registers) {
        guard let interruptLine else { return }
        let level = registers.interruptAsserted
        if level != registers.lineLevel {
            registers.lineLevel = level
            interruptLine(level)
        }
    }

    /// Reads each byte of a wider access from consecutive registers, as the ISA bus splits it.
    public func read(port: UInt16, size: Int) -> UInt32 {
        state.withLock { registers in
            var value: UInt32 = 0
            for i in 0..<min(max(size, 1), 4) {
                let offset = (Int(port) - Int(base) + i) & 7
                value |= UInt32(registers.read(offset: offset)) << (8 * UInt32(i))
            }
            updateLine(&registers)
            return value
        }
    }

    public func write(port: UInt16, size: Int, value: UInt32) -> DeviceEffect {
        let output = state.withLock { registers in
            var output: [UInt8] = []
            for i in 0..<min(max(size, 1), 4) {
                let offset = (Int(port) - Int(base) + i) & 7
                if let byte = registers.write(offset: offset, value: UInt8(truncatingIfNeeded: value >> (8 * UInt32(i)))) {
                    output.append(byte)
                }
            }
            updateLine(&registers)
            return output
        }
        // Outside the lock: the sink may block, and this vCPU does not resume before it returns,
        // so bytes one vCPU writes after another's still come out in order.
        if !output.isEmpty { sink.write(output) }
        return .none
    }
}

/// The UART registers. Offsets: 0 RBR/THR (DLL with DLAB), 1 IER (DLM with DLAB), 2 IIR/FCR,
/// 3 LCR, 4 MCR, 5 LSR, 6 MSR, 7 SCR.
private struct Registers {
    var receiveQueue: [UInt8] = []
    var receiveHead = 0
    var interruptEnable: UInt8 = 0
    var fifoControl: UInt8 = 0
    var lineControl: UInt8 = 0x03  // 8N1
    var modemControl: UInt8 = 0
    var scratch: UInt8 = 0
    var divisor: UInt16 = 12       // 9600 baud
    var overrun = false
    /// The "transmitter holding register empty" interrupt condition: set when THR empties
    /// (immediately, here) or when it is enabled, cleared by reading IIR that reports it.
    var transmitterEmptyPending = false
    /// What the interrupt line was last driven to.
    var lineLevel = false

    static let lsrDataReady: UInt8 = 0x01
    static let lsrOverrun: UInt8 = 0x02
    static let lsrTransmitterEmpty: UInt8 = 0x60  // THRE | TEMT
    static let lcrDLAB: UInt8 = 0x80
    static let mcrLoopback: UInt8 = 0x10
    static let mcrOut2: UInt8 = 0x08
    static let ierReceivedData: UInt8 = 0x01
    static let ierTransmitterEmpty: UInt8 = 0x02

    var dlab: Bool { lineControl & Registers.lcrDLAB != 0 }
    var loopback: Bool { modemControl & Registers.mcrLoopback != 0 }
    var dataReady: Bool { receiveHead < receiveQueue.count }

    mutating func enqueue(_ bytes: [UInt8]) {
        // Drop what has been read before growing the buffer again.
        if receiveHead > 0 && receiveHead == receiveQueue.count {
            receiveQueue.removeAll(keepingCapacity: true)
            receiveHead = 0
        }
        let room = max(0, Serial16550.receiveLimit - (receiveQueue.count - receiveHead))
        if bytes.count > room { overrun = true }
        receiveQueue += bytes.prefix(room)
    }

    mutating func read(offset: Int) -> UInt8 {
        switch offset {
        case 0:
            if dlab { return UInt8(truncatingIfNeeded: divisor) }
            guard dataReady else { return 0 }
            let byte = receiveQueue[receiveHead]
            receiveHead += 1
            if receiveHead == receiveQueue.count {
                receiveQueue.removeAll(keepingCapacity: true)
                receiveHead = 0
            }
            return byte
        case 1:
            return dlab ? UInt8(truncatingIfNeeded: divisor >> 8) : interruptEnable
        case 2:
            return interruptIdentification()
        case 3:
            return lineControl
        case 4:
            return modemControl
        case 5:
            var status = Registers.lsrTransmitterEmpty
            if dataReady { status |= Registers.lsrDataReady }
            if overrun { status |= Registers.lsrOverrun; overrun = false }  // cleared by reading LSR
            return status
        case 6:
            return modemStatus
        default:
            return scratch
        }
    }

    /// Returns the byte to transmit, if the write transmits one.
    mutating func write(offset: Int, value: UInt8) -> UInt8? {
        switch offset {
        case 0:
            if dlab {
                divisor = (divisor & 0xFF00) | UInt16(value)
                return nil
            }
            transmitterEmptyPending = true  // "sent" at once, so THR is empty again
            if loopback {
                enqueue([value])
                return nil
            }
            return value
        case 1:
            if dlab {
                divisor = (divisor & 0x00FF) | UInt16(value) << 8
            } else {
                let enabling = value & ~interruptEnable & Registers.ierTransmitterEmpty != 0
                interruptEnable = value & 0x0F
                if enabling { transmitterEmptyPending = true }
            }
        case 2:
            fifoControl = value
            if value & 0x02 != 0 {  // clear the receive FIFO
                receiveQueue.removeAll(keepingCapacity: true)
                receiveHead = 0
            }
        case 3:
            lineControl = value
        case 4:
            modemControl = value & 0x1F
        case 7:
            scratch = value
        default:
            break  // LSR and MSR are read-only
        }
        return nil
    }

    /// IIR: the highest-priority pending condition among those enabled in IER (polling drivers
    /// read it too), with bits 7:6 set while the FIFOs are enabled.
    mutating func interruptIdentification() -> UInt8 {
        let fifoBits: UInt8 = fifoControl & 0x01 != 0 ? 0xC0 : 0
        if interruptEnable & Registers.ierReceivedData != 0 && dataReady { return fifoBits | 0x04 }
        if interruptEnable & Registers.ierTransmitterEmpty != 0 && transmitterEmptyPending {
            transmitterEmptyPending = false
            return fifoBits | 0x02
        }
        return fifoBits | 0x01
    }

    /// The chip's INTR output as a PC's COM1 wires it: an enabled condition pending (IIR would
    /// report it), gated by OUT2, and kept inside the chip in loopback.
    var interruptAsserted: Bool {
        guard modemControl & Registers.mcrOut2 != 0, !loopback else { return false }
        return (interruptEnable & Registers.ierReceivedData != 0 && dataReady)
            || (interruptEnable & Registers.ierTransmitterEmpty != 0 && transmitterEmptyPending)
    }

    /// MSR: in loopback the modem inputs follow the outputs (CTS=RTS, DSR=DTR, RI=OUT1,
    /// DCD=OUT2); otherwise a cable that is always ready (DCD|DSR|CTS).
    var modemStatus: UInt8 {
        guard loopback else { return 0xB0 }
        var status: UInt8 = 0
        if modemControl & 0x02 != 0 { status |= 0x10 }
        if modemControl & 0x01 != 0 { status |= 0x20 }
        if modemControl & 0x04 != 0 { status |= 0x40 }
        if modemControl & 0x08 != 0 { status |= 0x80 }
        return status
    }
}

// One gdb connection's protocol state: acknowledgement mode, thread selection, whether the target
// runs. Bytes in, bytes out; the owner moves them to and from the transport and reports stops.
// Commands are answered in SessionCommands.swift.

/// The protocol side of one gdb connection.
///
/// Not thread-safe: the owner calls it from one controller thread. Feed it what gdb sent with
/// `receive(_:)` and send back what it returns; when a resumed target stops, call
/// `targetStopped(_:)` and send what that returns. Close the connection once `isClosed` is true.
///
/// While the target runs, only Ctrl-C (the 0x03 byte, or `vCtrlC`) is acted on, by calling
/// `target.interrupt()`. gdb sends nothing else in all-stop mode before the stop reply, so any
/// other packet is acknowledged and dropped rather than queued.
public final class Session {
    /// The largest packet we accept, advertised as `PacketSize` (hex). Also caps `m` replies.
    static let packetSize = 0x20000
    static let supportedReply = Array(
        "PacketSize=20000;qXfer:features:read+;qXfer:threads:read+;QStartNoAckMode+;swbreak+;hwbreak+;vContSupported+".utf8)

    let target: any Target
    /// The register view gdb is given: target.xml, the register packets, the stop replies.
    public let architecture: TargetArchitecture
    let layout: RegisterLayout
    /// target.xml for `layout`.
    let targetDescription: [UInt8]

    /// True between a resume (`c`, `s`, `vCont`...) and the `targetStopped(_:)` that ends it.
    public internal(set) var isRunning = false
    /// True once the connection has ended (`k`, `D`, or an exit outside extended mode): the owner
    /// should close the transport; further input is ignored.
    public internal(set) var isClosed = false
    /// True after `!`: the guest may exit and be restarted (`vRun`) without ending the session.
    public internal(set) var isExtended = false
    /// The most recent stop, answered to `?` and used as the current thread.
    public internal(set) var lastStop: StopEvent

    var decoder = PacketDecoder()
    /// After `QStartNoAckMode`: neither side sends `+`/`-` any more.
    var noAckMode = false
    /// gdb sent `error-message+` in qSupported, so `E.text` replies are understood.
    var errorMessagesAllowed = false
    /// The last framed packet sent, for retransmission on `-`.
    var lastPacket: [UInt8] = []
    /// `Hg`: the thread register and memory packets act on.
    var generalThread: ThreadSelector = .any
    /// `Hc`: the thread `c` signals and `s` steps.
    var continueThread: ThreadSelector = .any

    /// - Parameter initialStop: what `?` reports before the first resume: by default thread 1
    ///   stopped with SIGTRAP, as if at a breakpoint on the first instruction.
    /// - Parameter architecture: the register view to serve: `.x86_64`, or `.i386` for a 32-bit
    ///   guest image, whose ELF32 symbols make gdb reject an x86-64 description.
    /// - Parameter extensions: the register sets the guest's CPU has beyond the baseline (AVX,
    ///   AVX-512, PKRU, optional MSRs), from its CPUID.
    public init(target: any Target,
                initialStop: StopEvent = .stopped(thread: 1, signal: GDBSignal.sigtrap, reason: .none),
                architecture: TargetArchitecture = .x86_64, extensions: RegisterExtensions = .none) {
        self.target = target
        self.lastStop = initialStop
        self.architecture = architecture
        self.layout = RegisterLayout.of(architecture, extensions: extensions)
        self.targetDescription = extensions == .none
            ? TargetDescription.bytes(for: architecture) : Array(TargetDescription.xml(describing: layout).utf8)
    }

    /// Handles bytes from gdb; returns the bytes to send back (acknowledgements and replies).
    public func receive(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        guard !isClosed else { return out }
        for event in decoder.feed(bytes) {
            switch event {
            case .ack:
                break
            case .nak:
                // Also honoured in no-ack mode: gdb may reject the OK of QStartNoAckMode itself.
                out += lastPacket
            case .interrupt:
                if isRunning { target.interrupt() }
            case .badChecksum:
                // In no-ack mode the transport is trusted and there is no way to ask again.
                if !noAckMode { out.append(UInt8(ascii: "-")) }
            case .malformed:
                acknowledge(into: &out)
                if !isRunning { send([Reply.malformed], into: &out) }
            case .packet(let payload):
                acknowledge(into: &out)
                let command = Command(parsing: payload)
                send(isRunning ? handleWhileRunning(command) : handle(command), into: &out)
            }
            if isClosed { break }
        }
        return out
    }

    /// Reports that the resumed target stopped; returns the stop reply to send. An exit or
    /// termination ends the session unless it is in extended mode. A stop while not resumed only
    /// updates `lastStop`, since gdb is not waiting for a reply.
    public func targetStopped(_ event: StopEvent) -> [UInt8] {
        guard !isClosed else { return [] }
        lastStop = event
        guard isRunning else { return [] }
        isRunning = false
        var out: [UInt8] = []
        send([stopReply(event)], into: &out)
        switch event {
        case .stopped: break
        case .exited, .terminated: if !isExtended { isClosed = true }
        }
        return out
    }

    /// `O` packets that make gdb print `text` (e.g. the guest's console) on its terminal. gdb
    /// accepts them only while the target runs, so this returns nothing otherwise.
    public func consoleOutput(_ text: some Collection<UInt8>) -> [UInt8] {
        guard isRunning, !isClosed, !text.isEmpty else { return [] }
        var out: [UInt8] = []
        send(outputPackets(Array(text)), into: &out)
        return out
    }

    // MARK: Framing

    private func acknowledge(into out: inout [UInt8]) {
        if !noAckMode { out.append(UInt8(ascii: "+")) }
    }

    /// Frames each payload in order; remembers the last for retransmission.
    func send(_ payloads: [[UInt8]], into out: inout [UInt8]) {
        for payload in payloads {
            lastPacket = PacketEncoder.frame(payload)
            out += lastPacket
        }
    }

    /// Text as `O` packets of at most 16 KiB of text each, well inside gdb's packet buffer.
    func outputPackets(_ text: [UInt8]) -> [[UInt8]] {
        stride(from: 0, to: text.count, by: 0x4000).map { start in
            Reply.output(text[start..<min(start + 0x4000, text.count)])
        }
    }
}

// QEMU's gdbstub maintenance packets, which pwndbg and GEF use to tell a full-system target from
// a user-mode one (`maint packet Qqemu.sstepbits`): the single-step flags and physical memory
// mode, with the replies QEMU gives (QEMU 7.2 under KVM, gdbstub/gdbstub.c).

/// QEMU's SSTEP_* bits, as `qqemu.sstepbits` names them.
public enum QEMUStepFlags {
    /// Single-stepping steps (with the bit clear QEMU's `s` runs the guest on).
    public static let enable: UInt32 = 1
    /// Interrupts are not delivered during the step.
    public static let noIRQ: UInt32 = 2
    /// Timers do not advance during the step (QEMU offers it only under TCG).
    public static let noTimer: UInt32 = 4

    /// `ENABLE=1,NOIRQ=2,NOTIMER=4`, naming only the bits the target supports (as QEMU does).
    static func bitsReply(supported: UInt32) -> String {
        var text = "ENABLE=\(String(enable, radix: 16))"
        if supported & noIRQ != 0 { text += ",NOIRQ=\(String(noIRQ, radix: 16))" }
        if supported & noTimer != 0 { text += ",NOTIMER=\(String(noTimer, radix: 16))" }
        return text
    }
}

/// A target that serves QEMU's maintenance packets. Targets that do not conform get the empty
/// reply to them, as from any stub that does not know them.
public protocol QEMUMaintenanceTarget: Target {
    /// The QEMUStepFlags bits this target can honour.
    var supportedStepFlags: UInt32 { get }
    /// How `s` and `vCont;s` step from now on; only supported bits are ever set.
    var stepFlags: UInt32 { get set }
    /// Memory packets (`m`, `M`, `x`, `X`) take guest-physical addresses.
    var physicalMemoryMode: Bool { get set }
}

/// A target that names its server for `qGDBServerVersion` (LLDB asks; QEMU does not answer).
public protocol ServerVersionTarget: Target {
    /// `name:gdbvmm;version:0.1.0;`-style fields: the server's name and version.
    var serverName: String { get }
    var serverVersion: String { get }
}

extension Session {
    func handleQEMU(_ command: QEMUCommand) -> [[UInt8]] {
        guard let qemu = target as? any QEMUMaintenanceTarget else { return [Reply.empty] }
        switch command {
        case .supported:
            return [Array("sstepbits;sstep;PhyMemMode".utf8)]
        case .stepBits:
            return [Array(QEMUStepFlags.bitsReply(supported: qemu.supportedStepFlags).utf8)]
        case .stepFlags:
            return [Array("0x\(String(qemu.stepFlags, radix: 16))".utf8)]
        case .setStepFlags(let flags):
            // QEMU: E22 (EINVAL) for a bit it does not support.
            guard let flags, flags & ~UInt64(qemu.supportedStepFlags) == 0 else { return [qemuRefusal] }
            qemu.stepFlags = UInt32(flags)
            return [Reply.ok]
        case .physicalMemoryMode:
            return [Array((qemu.physicalMemoryMode ? "1" : "0").utf8)]
        case .setPhysicalMemoryMode(let mode):
            guard let mode else { return [qemuRefusal] }
            qemu.physicalMemoryMode = mode != 0
            return [Reply.ok]
        }
    }

    /// QEMU's refusal, "E22" as it writes it (EINVAL in decimal, not Reply.error's hex).
    private var qemuRefusal: [UInt8] { Array("E22".utf8) }

    func serverVersionReply() -> [[UInt8]] {
        guard let server = target as? any ServerVersionTarget else { return [Reply.empty] }
        return [Array("name:\(server.serverName);version:\(server.serverVersion);".utf8)]
    }
}

/// One of QEMU's maintenance packets, parsed; a nil argument did not parse (answered `E22`,
/// where QEMU itself answers with the empty packet, which gdb would read as "not supported").
public enum QEMUCommand: Equatable, Sendable {
    /// `qqemu.Supported`
    case supported
    /// `qqemu.sstepbits` (or `Qqemu.sstepbits`: QEMU answers both the same way, and pwndbg and
    /// GEF send the Q form)
    case stepBits
    /// `qqemu.sstep` / `Qqemu.sstep`
    case stepFlags
    /// `Qqemu.sstep=HEX` (or `qqemu.sstep=HEX`)
    case setStepFlags(UInt64?)
    /// `qqemu.PhyMemMode`
    case physicalMemoryMode
    /// `Qqemu.PhyMemMode:HEX`: any nonzero value turns it on.
    case setPhysicalMemoryMode(UInt64?)

    /// The QEMU packet in a `q`/`Q` payload, or nil when it is none of them. Like QEMU, the
    /// query names are answered under both letters; PhyMemMode only under its own.
    static func parse(_ payload: ArraySlice<UInt8>) -> QEMUCommand? {
        guard let letter = payload.first else { return nil }
        let name = String(decoding: payload.dropFirst(), as: UTF8.self)
        switch name {
        case "qemu.sstepbits": return .stepBits
        case "qemu.sstep": return .stepFlags
        case "qemu.Supported": return letter == UInt8(ascii: "q") ? .supported : nil
        case "qemu.PhyMemMode": return letter == UInt8(ascii: "q") ? .physicalMemoryMode : nil
        default: break
        }
        if name.hasPrefix("qemu.sstep=") {
            return .setStepFlags(parseHex(name.dropFirst("qemu.sstep=".count)))
        }
        if letter == UInt8(ascii: "Q"), name.hasPrefix("qemu.PhyMemMode:") {
            return .setPhysicalMemoryMode(parseHex(name.dropFirst("qemu.PhyMemMode:".count)))
        }
        return nil
    }

    /// QEMU reads these with strtoul base 16: an optional `0x`, then hex digits.
    private static func parseHex(_ text: Substring) -> UInt64? {
        var digits = text
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits = digits.dropFirst(2) }
        guard !digits.isEmpty, digits.count <= 16 else { return nil }
        return UInt64(digits, radix: 16)
    }
}

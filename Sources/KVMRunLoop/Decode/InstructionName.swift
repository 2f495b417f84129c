/// Names for the instructions a crash report is most likely to be about: those KVM's
/// instruction emulator cannot run where guest kernel code is emulated (PLATFORM.md), found
/// booting real kernels. Anything else is shown by its bytes alone.
public enum InstructionName {
    /// "popcnt (f3 48 0f b8 c7)", or just the bytes.
    public static func describe(_ bytes: [UInt8]) -> String {
        let hex = bytes.prefix(8).map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
            .joined(separator: " ")
        guard !bytes.isEmpty else { return "its bytes cannot be read" }
        if let name = name(bytes) { return "\(name) (\(hex))" }
        return "bytes \(hex)"
    }

    /// The mnemonic of a few instructions, after legacy and REX prefixes.
    public static func name(_ bytes: [UInt8]) -> String? {
        var i = 0
        var lock = false, rep = false, rexW = false
        while i < bytes.count {
            switch bytes[i] {
            case 0xF0: lock = true
            case 0xF3: rep = true
            case 0xF2, 0x66, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65, 0x67: break
            case 0x40...0x4F: rexW = bytes[i] & 0x08 != 0
            default:
                return name(opcode: Array(bytes[i...]), lock: lock, rep: rep, rexW: rexW)
            }
            i += 1
        }
        return nil
    }

    private static func name(opcode b: [UInt8], lock: Bool, rep: Bool, rexW: Bool) -> String? {
        if b[0] == 0x9B { return "fwait" }
        if b[0] == 0xF4 { return "hlt" }
        if b[0] == 0xCC { return "int3" }
        guard b[0] == 0x0F, b.count >= 2 else { return nil }
        let reg = b.count >= 3 ? (b[2] >> 3) & 7 : 0
        let memory = b.count >= 3 && b[2] >> 6 != 3
        switch b[1] {
        case 0xB8 where rep: return "popcnt"
        case 0xBC where rep: return "tzcnt"
        case 0xBD where rep: return "lzcnt"
        case 0xC7 where reg == 1 && memory: return (lock ? "lock " : "") + (rexW ? "cmpxchg16b" : "cmpxchg8b")
        case 0xAE where memory:
            let names = ["fxsave", "fxrstor", "ldmxcsr", "stmxcsr", "xsave", "xrstor", "xsaveopt", "clflush"]
            return names[Int(reg)] + (rexW && reg != 2 && reg != 3 && reg != 7 ? "64" : "")
        case 0xC7 where reg == 4 && memory: return rexW ? "xsavec64" : "xsavec"
        case 0x01 where b.count >= 3 && b[2] == 0xCA: return "clac"
        case 0x01 where b.count >= 3 && b[2] == 0xCB: return "stac"
        case 0x01 where b.count >= 3 && b[2] == 0xD0: return "xgetbv"
        case 0x01 where b.count >= 3 && b[2] == 0xD1: return "xsetbv"
        case 0x0B: return "ud2"
        default: return nil
        }
    }
}

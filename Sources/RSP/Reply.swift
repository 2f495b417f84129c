// Reply payloads (before framing). Kept apart from the session so the exact bytes gdb sees for
// each case can be read, and tested, in one place.

enum Reply {
    static let ok: [UInt8] = Array("OK".utf8)
    static let empty: [UInt8] = []

    /// `E01`: the packet's arguments did not parse.
    static let malformed = error(1)
    /// `E02`: the packet named a thread that does not exist.
    static let noSuchThread = error(2)
    /// `E00`: the qXfer annex is not one we serve (the code the RSP manual gives for it).
    static let badAnnex = error(0)

    /// `Exx` with a two-digit hex number.
    static func error(_ code: UInt8) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "E")]
        Hex.appendNumber(UInt64(code), minimumDigits: 2, to: &out)
        return out
    }

    /// A TargetError as gdb should see it: `Exx` for errno values, `E.text` when gdb said it
    /// understands error messages (else `E01`), and the empty packet for `unsupported`, which
    /// makes gdb fall back (e.g. from `Z1` to software breakpoints) or say "not supported".
    static func error(_ error: TargetError, messagesAllowed: Bool) -> [UInt8] {
        switch error {
        case .errno(let n):
            return self.error(UInt8(clamping: n))
        case .unsupported:
            return empty
        case .message(let text):
            guard messagesAllowed else { return malformed }
            // gdb does not unescape text replies, so the framing bytes cannot be sent at all.
            let safe = text.utf8.map { b -> UInt8 in
                switch b {
                case UInt8(ascii: "$"), UInt8(ascii: "#"), UInt8(ascii: "*"), UInt8(ascii: "}"): UInt8(ascii: "?")
                default: b
                }
            }
            return [UInt8(ascii: "E"), UInt8(ascii: ".")] + safe
        }
    }

    /// `W`/`X` for an ended guest, or `T` for a stopped thread: `Tss thread:tt;reason;` followed
    /// by `rr:value;` for each expedited register (the layout's pc, sp and fp: rip, rsp, rbp or
    /// eip, esp, ebp), so gdb can show where it stopped without a `g` round trip. `registers` is
    /// nil when they could not be read.
    static func stop(_ event: StopEvent, registers: X86_64Registers?,
                     layout: RegisterLayout = .x86_64) -> [UInt8] {
        switch event {
        case .exited(let status):
            return [UInt8(ascii: "W")] + Hex.encode([status])
        case .terminated(let signal):
            return [UInt8(ascii: "X")] + Hex.encode([signal])
        case .stopped(let thread, let signal, let reason):
            var out: [UInt8] = [UInt8(ascii: "T")]
            Hex.append([signal], to: &out)
            out += Array("thread:".utf8)
            appendThreadID(thread, to: &out)
            out.append(UInt8(ascii: ";"))
            switch reason {
            case .none: break
            case .softwareBreakpoint: out += Array("swbreak:;".utf8)
            case .hardwareBreakpoint: out += Array("hwbreak:;".utf8)
            case .watch(let address): appendWatch("watch", address, to: &out)
            case .readWatch(let address): appendWatch("rwatch", address, to: &out)
            case .accessWatch(let address): appendWatch("awatch", address, to: &out)
            }
            if let registers {
                for regnum in [layout.pc, layout.sp, layout.fp] {
                    guard let bytes = registers.rawBytes(ofRegister: regnum, in: layout) else { continue }
                    Hex.appendNumber(UInt64(regnum), minimumDigits: 2, to: &out)
                    out.append(UInt8(ascii: ":"))
                    Hex.append(bytes, to: &out)
                    out.append(UInt8(ascii: ";"))
                }
            }
            return out
        }
    }

    /// `O` + hex: text gdb prints on its console.
    static func output(_ text: some Collection<UInt8>) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "O")]
        Hex.append(text, to: &out)
        return out
    }

    /// A thread id in hex, two digits at least (`thread:01;`, like QEMU).
    static func appendThreadID(_ thread: ThreadID, minimumDigits: Int = 2, to out: inout [UInt8]) {
        Hex.appendNumber(UInt64(clamping: thread), minimumDigits: minimumDigits, to: &out)
    }

    private static func appendWatch(_ key: String, _ address: UInt64, to out: inout [UInt8]) {
        out += Array(key.utf8)
        out.append(UInt8(ascii: ":"))
        Hex.appendNumber(address, to: &out)
        out.append(UInt8(ascii: ";"))
    }
}

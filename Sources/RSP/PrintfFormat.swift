// The format string of an agent `printf` (gdb's `dprintf` with `set dprintf-style agent`),
// parsed into pieces once and formatted here, one argument at a time, as gdbserver's ax_printf
// does: the format never reaches a C printf, so a hostile one can do no harm.

struct PrintfFormat: Sendable, Equatable {
    struct Directive: Sendable, Equatable {
        var leftAlign = false, zeroPad = false, plus = false, space = false, alternate = false
        var width = 0
        var precision: Int?
        /// Bits the argument is taken as: 8 (hh), 16 (h), 32 (none), 64 (l, ll, z, j, t).
        var bits = 32
        /// d i u o x X c s p
        var conversion: UInt8 = UInt8(ascii: "d")
    }

    enum Piece: Sendable, Equatable {
        case literal([UInt8])
        case directive(Directive)
    }

    struct FormatError: Error { var reason: String }

    let pieces: [Piece]

    var argumentCount: Int {
        pieces.reduce(0) { if case .directive = $1 { return $0 + 1 }; return $0 }
    }

    init(parsing text: [UInt8]) throws(FormatError) {
        var pieces: [Piece] = []
        var literal: [UInt8] = []
        var i = 0
        func digits() -> Int {
            var n = 0
            while i < text.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(text[i]) {
                n = min(n * 10 + Int(text[i] - UInt8(ascii: "0")), 4096)
                i += 1
            }
            return n
        }
        while i < text.count {
            // gdb sends the format as typed: C escapes are the target's to expand.
            if text[i] == UInt8(ascii: "\\") {
                guard i + 1 < text.count, let expanded = Self.escapes[text[i + 1]] else {
                    throw FormatError(reason: "unknown escape in the format string")
                }
                literal.append(expanded)
                i += 2
                continue
            }
            guard text[i] == UInt8(ascii: "%") else {
                literal.append(text[i])
                i += 1
                continue
            }
            i += 1
            guard i < text.count else { throw FormatError(reason: "the format ends with '%'") }
            if text[i] == UInt8(ascii: "%") {
                literal.append(text[i])
                i += 1
                continue
            }
            var d = Directive()
            flags: while i < text.count {
                switch text[i] {
                case UInt8(ascii: "-"): d.leftAlign = true
                case UInt8(ascii: "0"): d.zeroPad = true
                case UInt8(ascii: "+"): d.plus = true
                case UInt8(ascii: " "): d.space = true
                case UInt8(ascii: "#"): d.alternate = true
                default: break flags
                }
                i += 1
            }
            d.width = digits()
            if i < text.count, text[i] == UInt8(ascii: ".") {
                i += 1
                d.precision = digits()
            }
            if i < text.count, text[i] == UInt8(ascii: "*") { throw FormatError(reason: "'*' widths are not supported") }
            if i + 1 < text.count, text[i] == UInt8(ascii: "h"), text[i + 1] == UInt8(ascii: "h") {
                d.bits = 8; i += 2
            } else if i + 1 < text.count, text[i] == UInt8(ascii: "l"), text[i + 1] == UInt8(ascii: "l") {
                d.bits = 64; i += 2
            } else if i < text.count, text[i] == UInt8(ascii: "h") {
                d.bits = 16; i += 1
            } else if i < text.count, "lzjt".utf8.contains(text[i]) {
                d.bits = 64; i += 1
            }
            guard i < text.count else { throw FormatError(reason: "the format ends inside a directive") }
            let c = text[i]
            i += 1
            guard "diuoxXcsp".utf8.contains(c) else {
                throw FormatError(reason: "the directive '%\(Character(Unicode.Scalar(c)))' is not supported in agent printf")
            }
            d.conversion = c
            if !literal.isEmpty { pieces.append(.literal(literal)); literal = [] }
            pieces.append(.directive(d))
        }
        if !literal.isEmpty { pieces.append(.literal(literal)) }
        self.pieces = pieces
    }

    /// The escapes gdb's own printf accepts.
    static let escapes: [UInt8: UInt8] = [
        UInt8(ascii: "\\"): UInt8(ascii: "\\"), UInt8(ascii: "a"): 0x07, UInt8(ascii: "b"): 0x08, UInt8(ascii: "e"): 0x1B,
        UInt8(ascii: "f"): 0x0C, UInt8(ascii: "n"): 0x0A, UInt8(ascii: "r"): 0x0D, UInt8(ascii: "t"): 0x09,
        UInt8(ascii: "v"): 0x0B, UInt8(ascii: "\""): UInt8(ascii: "\""),
    ]

    /// Longest string a `%s` reads from guest memory.
    static let maximumString = 4096

    /// The formatted text; `%s` arguments are read through `readString`.
    func format(_ arguments: [UInt64], readString: (UInt64) -> [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var next = 0
        for piece in pieces {
            switch piece {
            case .literal(let bytes):
                out += bytes
            case .directive(let d):
                let value = next < arguments.count ? arguments[next] : 0
                next += 1
                out += Self.format(value, d, readString: readString)
            }
        }
        return out
    }

    private static func format(_ raw: UInt64, _ d: Directive, readString: (UInt64) -> [UInt8]) -> [UInt8] {
        var body: [UInt8]
        var prefix: [UInt8] = []
        var numeric = true
        let mask: UInt64 = d.bits == 64 ? .max : (1 << UInt64(d.bits)) - 1
        switch d.conversion {
        case UInt8(ascii: "d"), UInt8(ascii: "i"):
            let shift = UInt64(64 - d.bits)
            let signed = Int64(bitPattern: raw << shift) >> Int64(shift)
            body = digits(signed.magnitude, radix: 10, precision: d.precision)
            if signed < 0 { prefix = [UInt8(ascii: "-")] } else if d.plus { prefix = [UInt8(ascii: "+")] } else if d.space { prefix = [UInt8(ascii: " ")] }
        case UInt8(ascii: "u"):
            body = digits(raw & mask, radix: 10, precision: d.precision)
        case UInt8(ascii: "o"):
            body = digits(raw & mask, radix: 8, precision: d.precision)
            if d.alternate, body.first != UInt8(ascii: "0") { body.insert(UInt8(ascii: "0"), at: 0) }
        case UInt8(ascii: "x"), UInt8(ascii: "X"):
            body = digits(raw & mask, radix: 16, precision: d.precision, uppercase: d.conversion == UInt8(ascii: "X"))
            if d.alternate, raw & mask != 0 { prefix = Array((d.conversion == UInt8(ascii: "X") ? "0X" : "0x").utf8) }
        case UInt8(ascii: "p"):
            // As glibc prints pointers.
            if raw == 0 {
                body = Array("(nil)".utf8)
                numeric = false
            } else {
                body = digits(raw, radix: 16, precision: d.precision)
                prefix = Array("0x".utf8)
            }
        case UInt8(ascii: "c"):
            body = [UInt8(truncatingIfNeeded: raw)]
            numeric = false
        default:  // s
            body = raw == 0 ? Array("(null)".utf8) : readString(raw)
            if let precision = d.precision, body.count > precision { body = Array(body.prefix(precision)) }
            numeric = false
        }
        let padding = max(0, d.width - prefix.count - body.count)
        if d.leftAlign { return prefix + body + [UInt8](repeating: UInt8(ascii: " "), count: padding) }
        if d.zeroPad && numeric && d.precision == nil {
            return prefix + [UInt8](repeating: UInt8(ascii: "0"), count: padding) + body
        }
        return [UInt8](repeating: UInt8(ascii: " "), count: padding) + prefix + body
    }

    private static func digits(_ value: UInt64, radix: UInt64, precision: Int?, uppercase: Bool = false) -> [UInt8] {
        // C: a zero precision prints nothing for the value 0.
        if value == 0 && precision == 0 { return [] }
        let alphabet = Array((uppercase ? "0123456789ABCDEF" : "0123456789abcdef").utf8)
        var out: [UInt8] = []
        var v = value
        repeat {
            out.append(alphabet[Int(v % radix)])
            v /= radix
        } while v != 0
        let minimum = precision ?? 1
        if out.count < minimum { out += [UInt8](repeating: UInt8(ascii: "0"), count: minimum - out.count) }
        return out.reversed()
    }
}

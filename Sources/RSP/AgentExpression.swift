// gdb's agent expressions (the gdb manual's "Agent Expressions" appendix): the bytecode gdb sends
// with `Z0`/`Z1` for target-side breakpoint conditions and for `dprintf` commands. Decoded and
// checked once, when gdb inserts the breakpoint, so that bad bytecode is refused with an error
// reply; evaluated (AgentExpressionEvaluator.swift) at every hit, again with every check, so
// that nothing gdb or anyone else sends can trap.

/// The opcodes of gdbsupport/ax.def, with their fixed values.
public enum AgentOpcode: UInt8, Sendable, CaseIterable {
    case float = 0x01, add = 0x02, sub = 0x03, mul = 0x04
    case divSigned = 0x05, divUnsigned = 0x06, remSigned = 0x07, remUnsigned = 0x08
    case lsh = 0x09, rshSigned = 0x0a, rshUnsigned = 0x0b
    case trace = 0x0c, traceQuick = 0x0d, logNot = 0x0e
    case bitAnd = 0x0f, bitOr = 0x10, bitXor = 0x11, bitNot = 0x12
    case equal = 0x13, lessSigned = 0x14, lessUnsigned = 0x15, ext = 0x16
    case ref8 = 0x17, ref16 = 0x18, ref32 = 0x19, ref64 = 0x1a
    case refFloat = 0x1b, refDouble = 0x1c, refLongDouble = 0x1d, lToD = 0x1e, dToL = 0x1f
    case ifGoto = 0x20, goto = 0x21
    case const8 = 0x22, const16 = 0x23, const32 = 0x24, const64 = 0x25
    case reg = 0x26, end = 0x27, dup = 0x28, pop = 0x29, zeroExt = 0x2a, swap = 0x2b
    case getv = 0x2c, setv = 0x2d, tracev = 0x2e, tracenz = 0x2f, trace16 = 0x30
    case pick = 0x32, rot = 0x33, printf = 0x34

    /// Operand bytes after the opcode (printf's are dynamic: see `AgentExpression.instructionLength`).
    var operandBytes: Int {
        switch self {
        case .traceQuick, .ext, .const8, .zeroExt, .pick: 1
        case .ifGoto, .goto, .const16, .reg, .getv, .setv, .tracev, .trace16: 2
        case .const32: 4
        case .const64: 8
        default: 0
        }
    }

    /// Stack items taken and left; nil for the ones whose effect depends on the operands.
    var stackEffect: (consumed: Int, produced: Int)? {
        switch self {
        case .add, .sub, .mul, .divSigned, .divUnsigned, .remSigned, .remUnsigned, .lsh, .rshSigned,
             .rshUnsigned, .bitAnd, .bitOr, .bitXor, .equal, .lessSigned, .lessUnsigned: (2, 1)
        case .logNot, .bitNot, .ext, .zeroExt, .ref8, .ref16, .ref32, .ref64, .traceQuick, .trace16, .setv: (1, 1)
        case .trace, .tracenz: (2, 0)
        case .ifGoto, .pop: (1, 0)
        case .const8, .const16, .const32, .const64, .reg, .getv: (0, 1)
        case .goto, .end, .tracev: (0, 0)
        case .dup: (1, 2)
        case .swap: (2, 2)
        case .rot: (3, 3)
        case .pick, .printf, .float, .refFloat, .refDouble, .refLongDouble, .lToD, .dToL: nil
        }
    }

    /// Floating point: gdb never emits these for x86 C conditions, and gdbserver refuses them too.
    var isFloatingPoint: Bool {
        switch self {
        case .float, .refFloat, .refDouble, .refLongDouble, .lToD, .dToL: true
        default: false
        }
    }
}

/// Why bytecode was refused at insert time.
public enum AgentExpressionError: Error, Sendable, Equatable {
    case empty
    case tooLong(Int)
    case unknownOpcode(pc: Int, opcode: UInt8)
    case unsupportedOpcode(pc: Int, AgentOpcode)
    /// The last instruction's operands run past the end.
    case truncated(pc: Int)
    /// A `goto`/`if_goto` to a place that is not the start of an instruction.
    case badJump(pc: Int, target: Int)
    case fallsOffEnd(pc: Int)
    case stackUnderflow(pc: Int)
    case stackOverflow(pc: Int)
    /// `ext`/`zero_ext` by 0 bits, a `pick` deeper than the stack.
    case badOperand(pc: Int)
    /// printf: no terminating NUL, a directive it cannot format, or a count that does not match.
    case badFormat(pc: Int, String)
    /// A condition whose `end` leaves nothing to test.
    case noResult(pc: Int)
}

/// One checked agent expression.
public struct AgentExpression: Sendable, Equatable {
    public let bytes: [UInt8]
    /// The printf formats, parsed once, by the pc of their `printf` instruction.
    let formats: [Int: PrintfFormat]

    /// The evaluation stack's depth limit (gdbserver's is 100).
    public static let maximumStack = 100
    /// Longer bytecode is refused: gdb's conditions are tens of bytes, and a packet is 128 KiB.
    public static let maximumLength = 0x4000

    /// Decodes and checks `bytes`: every opcode known, every operand inside the bytecode, every
    /// jump onto an instruction, the stack never below empty or above its limit on any path, and
    /// (for a condition) a value to test at every `end`.
    public init(validating bytes: [UInt8], isCondition: Bool) throws(AgentExpressionError) {
        guard !bytes.isEmpty else { throw .empty }
        guard bytes.count <= Self.maximumLength else { throw .tooLong(bytes.count) }
        // Pass 1: instruction boundaries, in order.
        var starts = Set<Int>()
        var formats: [Int: PrintfFormat] = [:]
        var pc = 0
        while pc < bytes.count {
            starts.insert(pc)
            guard let op = AgentOpcode(rawValue: bytes[pc]) else { throw .unknownOpcode(pc: pc, opcode: bytes[pc]) }
            if op.isFloatingPoint { throw .unsupportedOpcode(pc: pc, op) }
            guard let length = Self.instructionLength(bytes, at: pc) else { throw .truncated(pc: pc) }
            if op == .printf {
                let (count, text) = Self.printfOperands(bytes, at: pc)
                guard text.last == 0 else { throw .badFormat(pc: pc, "the format string is not NUL-terminated") }
                let format: PrintfFormat
                do {
                    format = try PrintfFormat(parsing: Array(text.dropLast()))
                } catch {
                    throw .badFormat(pc: pc, error.reason)
                }
                guard format.argumentCount == count else {
                    throw .badFormat(pc: pc, "\(format.argumentCount) directives but \(count) arguments")
                }
                formats[pc] = format
            }
            if op == .ext || op == .zeroExt, bytes[pc + 1] == 0 { throw .badOperand(pc: pc) }
            pc += length
        }
        // Pass 2: the stack depth along every path (each pc and depth visited once).
        var seen = Set<Int>()
        var work: [(pc: Int, depth: Int)] = [(0, 0)]
        while let (at, depth) = work.popLast() {
            guard at < bytes.count else { throw .fallsOffEnd(pc: at) }
            guard seen.insert(at * (Self.maximumStack + 1) + depth).inserted else { continue }
            let op = AgentOpcode(rawValue: bytes[at])!
            let next = at + Self.instructionLength(bytes, at: at)!
            var consumed = 0, produced = 0
            if let effect = op.stackEffect {
                (consumed, produced) = effect
            } else if op == .pick {
                consumed = Int(bytes[at + 1]) + 1
                produced = consumed + 1
            } else if op == .printf {
                consumed = Self.printfOperands(bytes, at: at).count + 2
            }
            guard depth >= consumed else { throw .stackUnderflow(pc: at) }
            let after = depth - consumed + produced
            guard after <= Self.maximumStack else { throw .stackOverflow(pc: at) }
            switch op {
            case .end:
                if isCondition && depth == 0 { throw .noResult(pc: at) }
            case .goto, .ifGoto:
                let target = Int(bytes[at + 1]) << 8 | Int(bytes[at + 2])
                guard starts.contains(target) else { throw .badJump(pc: at, target: target) }
                work.append((target, after))
                if op == .ifGoto { work.append((next, after)) }
            default:
                work.append((next, after))
            }
        }
        self.bytes = bytes
        self.formats = formats
    }

    /// The whole instruction's length at `pc`, or nil when it runs past the end.
    static func instructionLength(_ bytes: [UInt8], at pc: Int) -> Int? {
        guard pc < bytes.count, let op = AgentOpcode(rawValue: bytes[pc]) else { return nil }
        if op == .printf {
            // printf nargs, a 16-bit big-endian string length, the string.
            guard pc + 4 <= bytes.count else { return nil }
            let length = Int(bytes[pc + 2]) << 8 | Int(bytes[pc + 3])
            guard pc + 4 + length <= bytes.count else { return nil }
            return 4 + length
        }
        guard pc + 1 + op.operandBytes <= bytes.count else { return nil }
        return 1 + op.operandBytes
    }

    /// A checked printf's argument count and format string (with its NUL).
    static func printfOperands(_ bytes: [UInt8], at pc: Int) -> (count: Int, text: ArraySlice<UInt8>) {
        let length = Int(bytes[pc + 2]) << 8 | Int(bytes[pc + 3])
        return (Int(bytes[pc + 1]), bytes[(pc + 4)..<(pc + 4 + length)])
    }
}

extension AgentExpressionError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .empty: "empty agent expression"
        case .tooLong(let n): "agent expression of \(n) bytes is too long"
        case .unknownOpcode(let pc, let op): "unknown agent opcode 0x\(String(op, radix: 16)) at \(pc)"
        case .unsupportedOpcode(let pc, let op): "agent opcode \(op) at \(pc) is not supported"
        case .truncated(let pc): "agent expression ends inside the instruction at \(pc)"
        case .badJump(let pc, let target): "jump at \(pc) to \(target), which is not an instruction"
        case .fallsOffEnd(let pc): "agent expression runs off its end at \(pc)"
        case .stackUnderflow(let pc): "agent stack underflow at \(pc)"
        case .stackOverflow(let pc): "agent stack overflow at \(pc)"
        case .badOperand(let pc): "bad operand at \(pc)"
        case .badFormat(let pc, let why): "bad printf at \(pc): \(why)"
        case .noResult(let pc): "the condition ends at \(pc) with nothing on the stack"
        }
    }
}

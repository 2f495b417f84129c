// Runs a checked agent expression against a stopped thread: its registers, its memory (through
// whatever the host provides, e.g. the guest's page tables) and trace state variables. Every
// step is checked again at run time and evaluation is bounded, so a result always comes back.

/// What an expression may look at.
public protocol AgentContext {
    /// Register `number` in gdb's numbering for the target description in use; nil if unknown.
    func register(_ number: Int) -> UInt64?
    /// `count` bytes at `address`, or nil when any of them cannot be read.
    func readMemory(_ address: UInt64, count: Int) -> [UInt8]?
    /// Trace state variables (`getv`/`setv`): none unless the host keeps them.
    func variable(_ number: Int) -> UInt64
    func setVariable(_ number: Int, to value: UInt64)
}

extension AgentContext {
    public func variable(_ number: Int) -> UInt64 { 0 }
    public func setVariable(_ number: Int, to value: UInt64) {}
}

public enum AgentEvaluationError: Error, Sendable, Equatable {
    case memoryFault(address: UInt64)
    case unknownRegister(Int)
    case divideByZero
    case stackUnderflow, stackOverflow
    case stepLimit
    case badBytecode(pc: Int)
}

extension AgentExpression {
    /// More steps than this means a loop: no C condition gdb compiles has one.
    public static let stepLimit = 10_000

    /// Runs the expression; `output` receives what its `printf`s print. Returns the value on top of
    /// the stack at `end` (0 for a command that leaves nothing).
    public func evaluate(in context: some AgentContext, output: inout [UInt8]) -> Result<UInt64, AgentEvaluationError> {
        var stack: [UInt64] = []
        stack.reserveCapacity(16)
        var pc = 0
        var steps = 0
        let code = bytes
        func operand(_ offset: Int, _ count: Int) -> UInt64 {
            var v: UInt64 = 0
            for i in 0..<count { v = v << 8 | UInt64(code[pc + offset + i]) }
            return v
        }
        while true {
            steps += 1
            guard steps <= Self.stepLimit else { return .failure(.stepLimit) }
            guard pc < code.count, let op = AgentOpcode(rawValue: code[pc]),
                  let length = Self.instructionLength(code, at: pc) else { return .failure(.badBytecode(pc: pc)) }
            var next = pc + length
            // Binary operators: a is the deeper operand, b the top (a - b, a < b, a << b...).
            if let effect = op.stackEffect, stack.count < effect.consumed { return .failure(.stackUnderflow) }
            switch op {
            case .add, .sub, .mul, .divSigned, .divUnsigned, .remSigned, .remUnsigned, .lsh, .rshSigned,
                 .rshUnsigned, .bitAnd, .bitOr, .bitXor, .equal, .lessSigned, .lessUnsigned:
                let b = stack.removeLast()
                let a = stack.removeLast()
                guard let value = Self.binary(op, a, b) else { return .failure(.divideByZero) }
                stack.append(value)
            case .logNot:
                stack[stack.count - 1] = stack[stack.count - 1] == 0 ? 1 : 0
            case .bitNot:
                stack[stack.count - 1] = ~stack[stack.count - 1]
            case .ext:
                let bits = UInt64(code[pc + 1])
                if bits > 0 && bits < 64 {
                    let shift = 64 - bits
                    stack[stack.count - 1] = UInt64(bitPattern: Int64(bitPattern: stack[stack.count - 1] << shift) >> Int64(shift))
                }
            case .zeroExt:
                let bits = UInt64(code[pc + 1])
                if bits < 64 { stack[stack.count - 1] &= (1 << bits) &- 1 }
            case .ref8, .ref16, .ref32, .ref64:
                let count = op == .ref8 ? 1 : op == .ref16 ? 2 : op == .ref32 ? 4 : 8
                let address = stack[stack.count - 1]
                guard let data = context.readMemory(address, count: count), data.count == count else {
                    return .failure(.memoryFault(address: address))
                }
                stack[stack.count - 1] = data.reversed().reduce(0) { $0 << 8 | UInt64($1) }
            case .ifGoto:
                if stack.removeLast() != 0 { next = Int(operand(1, 2)) }
            case .goto:
                next = Int(operand(1, 2))
            case .const8, .const16, .const32, .const64:
                stack.append(operand(1, op.operandBytes))
            case .reg:
                let number = Int(operand(1, 2))
                guard let value = context.register(number) else { return .failure(.unknownRegister(number)) }
                stack.append(value)
            case .end:
                return .success(stack.last ?? 0)
            case .dup:
                stack.append(stack[stack.count - 1])
            case .pop:
                stack.removeLast()
            case .swap:
                stack.swapAt(stack.count - 1, stack.count - 2)
            case .rot:
                // a b c (c on top) -> c a b, as gdbserver rotates.
                let c = stack.removeLast()
                stack.insert(c, at: stack.count - 2)
            case .pick:
                let depth = Int(code[pc + 1])
                guard depth < stack.count else { return .failure(.stackUnderflow) }
                stack.append(stack[stack.count - 1 - depth])
            case .getv:
                stack.append(context.variable(Int(operand(1, 2))))
            case .setv:
                context.setVariable(Int(operand(1, 2)), to: stack[stack.count - 1])
            case .trace, .tracenz:
                // Tracing collects into a trace buffer, which we do not keep.
                stack.removeLast(2)
            case .traceQuick, .trace16, .tracev:
                break
            case .printf:
                let (count, _) = Self.printfOperands(code, at: pc)
                guard stack.count >= count + 2, let format = formats[pc] else { return .failure(.stackUnderflow) }
                // Function and channel (unused: the text goes to gdb's console), then the arguments,
                // the first on top.
                stack.removeLast(2)
                var arguments: [UInt64] = []
                for _ in 0..<count { arguments.append(stack.removeLast()) }
                output += format.format(arguments) { address in Self.readString(address, context) }
            case .float, .refFloat, .refDouble, .refLongDouble, .lToD, .dToL:
                return .failure(.badBytecode(pc: pc))
            }
            guard stack.count <= Self.maximumStack else { return .failure(.stackOverflow) }
            pc = next
        }
    }

    /// A condition's verdict: true when it evaluates to non-zero, and also when it cannot be
    /// evaluated (a fault, a loop), so that gdb, which evaluates it again, decides.
    public func conditionHolds(in context: some AgentContext) -> Bool {
        var ignored: [UInt8] = []
        switch evaluate(in: context, output: &ignored) {
        case .success(let value): return value != 0
        case .failure: return true
        }
    }

    static func binary(_ op: AgentOpcode, _ a: UInt64, _ b: UInt64) -> UInt64? {
        let sa = Int64(bitPattern: a), sb = Int64(bitPattern: b)
        switch op {
        case .add: return a &+ b
        case .sub: return a &- b
        case .mul: return a &* b
        case .divSigned:
            guard b != 0 else { return nil }
            return UInt64(bitPattern: sa.dividedReportingOverflow(by: sb).partialValue)
        case .divUnsigned:
            guard b != 0 else { return nil }
            return a / b
        case .remSigned:
            guard b != 0 else { return nil }
            return UInt64(bitPattern: sa.remainderReportingOverflow(dividingBy: sb).partialValue)
        case .remUnsigned:
            guard b != 0 else { return nil }
            return a % b
        case .lsh: return b >= 64 ? 0 : a << b
        case .rshSigned: return UInt64(bitPattern: sa >> Int64(min(b, 63)))
        case .rshUnsigned: return b >= 64 ? 0 : a >> b
        case .bitAnd: return a & b
        case .bitOr: return a | b
        case .bitXor: return a ^ b
        case .equal: return a == b ? 1 : 0
        case .lessSigned: return sa < sb ? 1 : 0
        case .lessUnsigned: return a < b ? 1 : 0
        default: return nil
        }
    }

    /// A `%s` argument: bytes up to the NUL (or to unreadable memory), at most
    /// `PrintfFormat.maximumString`, read in chunks that never span two pages.
    static func readString(_ address: UInt64, _ context: some AgentContext) -> [UInt8] {
        var out: [UInt8] = []
        var cursor = address
        while out.count < PrintfFormat.maximumString {
            let chunk = Int(64 - (cursor & 63))
            if let bytes = context.readMemory(cursor, count: chunk), bytes.count == chunk {
                if let nul = bytes.firstIndex(of: 0) { return out + bytes[..<nul] }
                out += bytes
                cursor &+= UInt64(chunk)
                continue
            }
            // Part of the chunk is unreadable: the string ends at its NUL or where reading fails.
            for _ in 0..<chunk {
                guard let byte = context.readMemory(cursor, count: 1)?.first, byte != 0 else { return out }
                out.append(byte)
                cursor &+= 1
            }
            return out
        }
        return out
    }
}

extension X86_64Registers {
    /// Register `number` as the agent's `reg` opcode reads it: gdb's numbering for
    /// `architecture`, the register's little-endian bytes as an integer (wider ones, x87 and SSE,
    /// are not integers an expression can hold: nil).
    public func agentValue(ofRegister number: Int, architecture: TargetArchitecture) -> UInt64? {
        guard let bytes = rawBytes(ofRegister: number, in: RegisterLayout.of(architecture)), bytes.count <= 8 else { return nil }
        return bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
}

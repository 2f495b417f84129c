import Testing
@testable import RSP

/// Registers by number and bytes by address, as an expression sees a stopped thread.
final class FakeAgentContext: AgentContext {
    var registers: [Int: UInt64] = [:]
    var memory: [UInt64: UInt8] = [:]
    var variables: [Int: UInt64] = [:]
    private(set) var reads = 0

    func register(_ number: Int) -> UInt64? { registers[number] }

    func readMemory(_ address: UInt64, count: Int) -> [UInt8]? {
        reads += 1
        var out: [UInt8] = []
        for i in 0..<count {
            guard let b = memory[address &+ UInt64(i)] else { return nil }
            out.append(b)
        }
        return out
    }

    func variable(_ number: Int) -> UInt64 { variables[number] ?? 0 }
    func setVariable(_ number: Int, to value: UInt64) { variables[number] = value }

    func store(_ bytes: [UInt8], at address: UInt64) {
        for (i, b) in bytes.enumerated() { memory[address + UInt64(i)] = b }
    }
}

typealias Op = AgentOpcode

/// Bytecode from opcodes and operand bytes.
func code(_ items: [Any]) -> [UInt8] {
    items.flatMap { item -> [UInt8] in
        if let op = item as? AgentOpcode { return [op.rawValue] }
        if let byte = item as? UInt8 { return [byte] }
        if let int = item as? Int { return [UInt8(truncatingIfNeeded: int)] }
        if let bytes = item as? [UInt8] { return bytes }
        fatalError("bad code item \(item)")
    }
}

func be(_ value: UInt64, _ count: Int) -> [UInt8] { (0..<count).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) } }

func const64(_ v: UInt64) -> [UInt8] { [Op.const64.rawValue] + be(v, 8) }

/// Runs bytecode as a condition and returns its value (or the failure).
func run(_ items: [Any], context: FakeAgentContext = FakeAgentContext(), isCondition: Bool = true)
    -> Result<UInt64, AgentEvaluationError>? {
    guard let expression = try? AgentExpression(validating: code(items), isCondition: isCondition) else { return nil }
    var output: [UInt8] = []
    return expression.evaluate(in: context, output: &output)
}

func value(_ items: [Any], context: FakeAgentContext = FakeAgentContext()) -> UInt64? {
    guard case .success(let v)? = run(items, context: context) else { return nil }
    return v
}

@Suite struct AgentExpressionTests {
    static let minusOne = UInt64.max
    static let minusSeven = UInt64(bitPattern: -7)

    /// Every binary operator: a is pushed first, b second (b on top).
    @Test(arguments: [
        (Op.add, 5, 3, 8), (Op.sub, 5, 3, 2), (Op.sub, 3, 5, UInt64(bitPattern: -2)), (Op.mul, 6, 7, 42),
        (Op.divSigned, minusSeven, 2, UInt64(bitPattern: -3)), (Op.divUnsigned, 7, 2, 3),
        (Op.remSigned, minusSeven, 2, minusOne), (Op.remUnsigned, 7, 3, 1),
        (Op.lsh, 1, 4, 16), (Op.lsh, 1, 64, 0), (Op.rshSigned, UInt64(bitPattern: -16), 2, UInt64(bitPattern: -4)),
        (Op.rshUnsigned, UInt64(bitPattern: -16), 60, 15), (Op.rshUnsigned, 1, 70, 0),
        (Op.bitAnd, 0b1100, 0b1010, 0b1000), (Op.bitOr, 0b1100, 0b1010, 0b1110), (Op.bitXor, 0b1100, 0b1010, 0b0110),
        (Op.equal, 4, 4, 1), (Op.equal, 4, 5, 0),
        (Op.lessSigned, minusOne, 1, 1), (Op.lessSigned, 1, minusOne, 0),
        (Op.lessUnsigned, minusOne, 1, 0), (Op.lessUnsigned, 1, 2, 1),
        (Op.divSigned, UInt64(1) << 63, minusOne, UInt64(1) << 63),
        (Op.remSigned, UInt64(1) << 63, minusOne, 0),
    ] as [(AgentOpcode, UInt64, UInt64, UInt64)])
    func binaryOperators(op: AgentOpcode, a: UInt64, b: UInt64, expected: UInt64) {
        #expect(value([const64(a), const64(b), op, Op.end]) == expected)
    }

    @Test(arguments: [Op.divSigned, Op.divUnsigned, Op.remSigned, Op.remUnsigned])
    func divisionByZeroFails(op: AgentOpcode) {
        #expect(run([const64(1), Op.const8, 0, op, Op.end]) == .failure(.divideByZero))
    }

    @Test func unaryOperatorsAndExtensions() {
        #expect(value([Op.const8, 0, Op.logNot, Op.end]) == 1)
        #expect(value([Op.const8, 9, Op.logNot, Op.end]) == 0)
        #expect(value([Op.const8, 0, Op.bitNot, Op.end]) == UInt64.max)
        #expect(value([Op.const8, 0xff, Op.ext, 8, Op.end]) == UInt64.max)
        #expect(value([Op.const8, 0x7f, Op.ext, 8, Op.end]) == 0x7f)
        #expect(value([Op.const16, be(0x8000, 2), Op.ext, 16, Op.end]) == UInt64(bitPattern: -32768))
        #expect(value([const64(0x1_2345_6789), Op.zeroExt, 32, Op.end]) == 0x2345_6789)
        #expect(value([const64(0x1ff), Op.zeroExt, 8, Op.end]) == 0xff)
        #expect(value([const64(UInt64.max), Op.zeroExt, 64, Op.end]) == UInt64.max)
        #expect(value([const64(UInt64.max), Op.ext, 64, Op.end]) == UInt64.max)
    }

    @Test func constantsAreBigEndianAndZeroExtended() {
        #expect(value([Op.const8, 0xfe, Op.end]) == 0xfe)
        #expect(value([Op.const16, 0x12, 0x34, Op.end]) == 0x1234)
        #expect(value([Op.const32, be(0xdead_beef, 4), Op.end]) == 0xdead_beef)
        #expect(value([const64(0x0102_0304_0506_0708), Op.end]) == 0x0102_0304_0506_0708)
    }

    @Test func memoryReferencesAreLittleEndian() {
        let c = FakeAgentContext()
        c.store([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88], at: 0x1000)
        #expect(value([Op.const16, be(0x1000, 2), Op.ref8, Op.end], context: c) == 0x11)
        #expect(value([Op.const16, be(0x1000, 2), Op.ref16, Op.end], context: c) == 0x2211)
        #expect(value([Op.const16, be(0x1000, 2), Op.ref32, Op.end], context: c) == 0x4433_2211)
        #expect(value([Op.const16, be(0x1000, 2), Op.ref64, Op.end], context: c) == 0x8877_6655_4433_2211)
        // A pointer dereference: *(long *)*(long *)0x2000 where 0x2000 holds 0x1000.
        c.store([0x00, 0x10, 0, 0, 0, 0, 0, 0], at: 0x2000)
        #expect(value([Op.const16, be(0x2000, 2), Op.ref64, Op.ref64, Op.end], context: c) == 0x8877_6655_4433_2211)
        // One byte short of the 8 is a fault.
        #expect(run([Op.const16, be(0x1001, 2), Op.ref64, Op.end], context: c) == .failure(.memoryFault(address: 0x1001)))
    }

    @Test func registers() {
        let c = FakeAgentContext()
        c.registers[0] = 5
        c.registers[6] = 0x7ff0
        #expect(value([Op.reg, 0, 0, Op.const8, 5, Op.equal, Op.end], context: c) == 1)
        #expect(value([Op.reg, 0, 6, Op.end], context: c) == 0x7ff0)
        #expect(run([Op.reg, 0x01, 0x00, Op.end], context: c) == .failure(.unknownRegister(256)))
    }

    @Test func stackOperations() {
        // dup, pop, swap, pick, rot
        #expect(value([Op.const8, 3, Op.dup, Op.add, Op.end]) == 6)
        #expect(value([Op.const8, 3, Op.const8, 4, Op.pop, Op.end]) == 3)
        #expect(value([Op.const8, 10, Op.const8, 3, Op.swap, Op.sub, Op.end]) == UInt64(bitPattern: -7))
        #expect(value([Op.const8, 10, Op.const8, 3, Op.pick, 1, Op.end]) == 10)
        #expect(value([Op.const8, 10, Op.const8, 3, Op.pick, 0, Op.end]) == 3)
        // a b c -> c a b: the top is then b, below it a, below that c.
        #expect(value([Op.const8, 1, Op.const8, 2, Op.const8, 3, Op.rot, Op.end]) == 2)
        #expect(value([Op.const8, 1, Op.const8, 2, Op.const8, 3, Op.rot, Op.pop, Op.end]) == 1)
        #expect(value([Op.const8, 1, Op.const8, 2, Op.const8, 3, Op.rot, Op.pop, Op.pop, Op.end]) == 3)
    }

    @Test func branches() {
        // if (1) goto L; push 7; end; L: push 9; end
        let taken: [Any] = [Op.const8, 1, Op.ifGoto, 0, 8, Op.const8, 7, Op.end, Op.const8, 9, Op.end]
        #expect(value(taken) == 9)
        var notTaken = taken
        notTaken[1] = 0
        #expect(value(notTaken) == 7)
        #expect(value([Op.goto, 0, 5, Op.const8, 1, Op.const8, 2, Op.end]) == 2)
        // gdb's `a && b`: a; if_goto L1; const 0; goto L2; L1: b; L2: end
        let andBoth: [Any] = [Op.const8, 1, Op.ifGoto, 0, 10, Op.const8, 0, Op.goto, 0, 12, Op.const8, 5, Op.end]
        #expect(value(andBoth) == 5)
    }

    @Test func traceOpcodesAreNoOps() {
        #expect(value([Op.const8, 1, Op.const8, 0x10, Op.const8, 4, Op.trace, Op.end]) == 1)
        #expect(value([Op.const8, 0x10, Op.traceQuick, 4, Op.end]) == 0x10)
        #expect(value([Op.const8, 0x10, Op.trace16, 0, 4, Op.end]) == 0x10)
        #expect(value([Op.const8, 2, Op.tracev, 0, 1, Op.end]) == 2)
        #expect(value([Op.const8, 3, Op.const8, 0x10, Op.const8, 4, Op.tracenz, Op.end]) == 3)
    }

    @Test func traceStateVariables() {
        let c = FakeAgentContext()
        #expect(value([Op.const8, 42, Op.setv, 0, 3, Op.end], context: c) == 42)
        #expect(c.variables[3] == 42)
        #expect(value([Op.getv, 0, 3, Op.const8, 1, Op.add, Op.end], context: c) == 43)
    }

    @Test func aLoopHitsTheStepLimit() {
        // L: goto L, behind a branch the checker cannot rule out.
        #expect(run([Op.goto, 0, 0]) == .failure(.stepLimit))
    }

    @Test func conditionsThatCannotBeEvaluatedHold() throws {
        let fault = try AgentExpression(validating: code([Op.const8, 0x40, Op.ref8, Op.end]), isCondition: true)
        #expect(fault.conditionHolds(in: FakeAgentContext()))
        let zero = try AgentExpression(validating: code([Op.const8, 0, Op.end]), isCondition: true)
        #expect(!zero.conditionHolds(in: FakeAgentContext()))
        let divide = try AgentExpression(validating: code([Op.const8, 1, Op.const8, 0, Op.divSigned, Op.end]), isCondition: true)
        #expect(divide.conditionHolds(in: FakeAgentContext()))
    }

    // MARK: refused at insert time

    @Test func malformedBytecodeIsRefused() {
        func error(_ items: [Any], isCondition: Bool = true) -> AgentExpressionError? {
            do {
                _ = try AgentExpression(validating: code(items), isCondition: isCondition)
                return nil
            } catch {
                return error
            }
        }
        #expect(error([]) == .empty)
        #expect(error([0xff]) == .unknownOpcode(pc: 0, opcode: 0xff))
        #expect(error([0x31]) == .unknownOpcode(pc: 0, opcode: 0x31))
        #expect(error([Op.const8, 1, Op.float, Op.end]) == .unsupportedOpcode(pc: 2, .float))
        #expect(error([Op.refDouble]) == .unsupportedOpcode(pc: 0, .refDouble))
        #expect(error([Op.const32, 1, 2]) == .truncated(pc: 0))
        #expect(error([Op.const8, 1, Op.goto, 0, 3, Op.end]) == .badJump(pc: 2, target: 3))
        #expect(error([Op.const8, 1, Op.ifGoto, 0x10, 0, Op.end]) == .badJump(pc: 2, target: 0x1000))
        #expect(error([Op.const8, 1]) == .fallsOffEnd(pc: 2))
        #expect(error([Op.add, Op.end]) == .stackUnderflow(pc: 0))
        #expect(error([Op.const8, 1, Op.pick, 1, Op.end]) == .stackUnderflow(pc: 2))
        #expect(error([Op.const8, 1, Op.rot, Op.end]) == .stackUnderflow(pc: 2))
        #expect(error([Op.end]) == .noResult(pc: 0))
        #expect(error([Op.end], isCondition: false) == nil)
        #expect(error([Op.const8, 1, Op.ext, 0, Op.end]) == .badOperand(pc: 2))
        let deep: [Any] = Array(repeating: [Op.const8, 1] as [Any], count: 101).flatMap { $0 } + [Op.end]
        #expect(error(deep) == .stackOverflow(pc: 200))
        let justFits: [Any] = Array(repeating: [Op.const8, 1] as [Any], count: 100).flatMap { $0 } + [Op.end]
        #expect(error(justFits) == nil)
        #expect(error(Array(repeating: Op.end as Any, count: AgentExpression.maximumLength + 1)) == .tooLong(AgentExpression.maximumLength + 1))
        // Underflow on only one of two paths is still refused.
        #expect(error([Op.const8, 1, Op.ifGoto, 0, 9, Op.const8, 1, Op.pop, Op.pop, Op.const8, 1, Op.end]) == .stackUnderflow(pc: 8))
    }

    @Test func randomBytecodeNeverTraps() {
        var rng = FuzzTests.SplitMix(state: 0xA6E47)
        var accepted = 0
        for round in 0..<20_000 {
            let count = Int(rng.next() % 24) + 1
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            // Bias towards real opcodes so that some programs pass the checks.
            if round % 2 == 0 { bytes = bytes.map { 0x02 + $0 % 0x33 } }
            bytes.append(AgentOpcode.end.rawValue)
            for isCondition in [true, false] {
                guard let expression = try? AgentExpression(validating: bytes, isCondition: isCondition) else { continue }
                accepted += 1
                let c = FakeAgentContext()
                c.registers[0] = rng.next()
                c.store((0..<256).map { UInt8($0) }, at: 0)
                var output: [UInt8] = []
                _ = expression.evaluate(in: c, output: &output)
            }
        }
        #expect(accepted > 100)
    }
}

@Suite struct PrintfFormatTests {
    func printf(_ format: String, _ args: [UInt64], strings: [UInt64: String] = [:]) -> String? {
        guard let f = try? PrintfFormat(parsing: Array(format.utf8)) else { return nil }
        return String(decoding: f.format(args) { Array((strings[$0] ?? "?").utf8) }, as: UTF8.self)
    }

    @Test func directives() {
        #expect(printf("x=%d y=%lx s=%s\\n", [UInt64(bitPattern: -5), 0xbeef, 0x10], strings: [0x10: "str"]) == "x=-5 y=beef s=str\n")
        #expect(printf("%u %x %X %o %c", [UInt64.max, 255, 255, 8, 65]) == "4294967295 ff FF 10 A")
        #expect(printf("%ld %lu %lld", [UInt64.max, UInt64.max, UInt64(bitPattern: -3)]) == "-1 18446744073709551615 -3")
        #expect(printf("%hhd %hd %hu", [0xff, 0x8000, 0x18000]) == "-1 -32768 32768")
        #expect(printf("[%5d|%-5d|%05d|%+d|% d]", [42, 42, 42, 42, 42]) == "[   42|42   |00042|+42| 42]")
        #expect(printf("[%.3d|%#x|%#o|%8.3s]", [7, 255, 8, 1], strings: [1: "abcdef"]) == "[007|0xff|010|     abc]")
        #expect(printf("%p %p %s", [0, 0x1000, 0]) == "(nil) 0x1000 (null)")
        #expect(printf("100%% \\t\\\"q\\\"\\\\", []) == "100% \t\"q\"\\")
        #expect(printf("%.0d|", [0]) == "|")
    }

    @Test func unsupportedFormatsAreRefused() {
        for bad in ["%f", "%*d", "%", "%l", "\\q", "%n", "%Lf"] {
            #expect(printf(bad, [1]) == nil, "\(bad)")
        }
    }

    @Test func printfBytecode() throws {
        // dprintf "a=%d s=%s\n", 7, (char *)0x100: args pushed last-first, then fn and chan.
        let text = Array("a=%d s=%s\\n".utf8) + [0]
        let bytes = code([Op.const16, be(0x100, 2), Op.const8, 7, Op.const8, 0, Op.const8, 0,
                          Op.printf, 2, be(UInt64(text.count), 2), text, Op.end])
        let expression = try AgentExpression(validating: bytes, isCondition: false)
        let c = FakeAgentContext()
        c.store(Array("guest\0".utf8), at: 0x100)
        var out: [UInt8] = []
        #expect(expression.evaluate(in: c, output: &out) == .success(0))
        #expect(String(decoding: out, as: UTF8.self) == "a=7 s=guest\n")
        // A string running into unmapped memory prints what could be read.
        c.memory = [:]
        c.store(Array("abc".utf8), at: 0x13d)
        let bytes2 = code([Op.const16, be(0x13d, 2), Op.const8, 7, Op.const8, 0, Op.const8, 0,
                           Op.printf, 2, be(UInt64(text.count), 2), text, Op.end])
        out = []
        _ = try AgentExpression(validating: bytes2, isCondition: false).evaluate(in: c, output: &out)
        #expect(String(decoding: out, as: UTF8.self) == "a=7 s=abc\n")
    }

    @Test func badPrintfBytecodeIsRefused() {
        let unterminated = Array("%d".utf8)
        #expect(throws: AgentExpressionError.self) {
            try AgentExpression(validating: code([Op.const8, 1, Op.const8, 0, Op.const8, 0, Op.printf, 1, 0, 2, unterminated, Op.end]),
                                isCondition: false)
        }
        let one = Array("%d %d".utf8) + [0]
        #expect(throws: AgentExpressionError.self) {
            try AgentExpression(validating: code([Op.const8, 1, Op.const8, 0, Op.const8, 0, Op.printf, 1, 0, UInt8(one.count), one, Op.end]),
                                isCondition: false)
        }
        // Two arguments announced, one on the stack (plus function and channel).
        let two = Array("%d %d".utf8) + [0]
        #expect(throws: AgentExpressionError.stackUnderflow(pc: 6)) {
            try AgentExpression(validating: code([Op.const8, 1, Op.const8, 0, Op.const8, 0, Op.printf, 2, 0, UInt8(two.count), two, Op.end]),
                                isCondition: false)
        }
        // The string length runs past the end.
        #expect(throws: AgentExpressionError.truncated(pc: 0)) {
            try AgentExpression(validating: code([Op.printf, 0, 0, 9, 0]), isCondition: false)
        }
    }
}

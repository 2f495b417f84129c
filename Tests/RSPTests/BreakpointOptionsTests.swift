import Testing
@testable import RSP

private func parse(_ s: String) -> Command { Command(parsing: Array(s.utf8)) }

private func hex(_ bytes: [UInt8]) -> String { String(decoding: Hex.encode(bytes), as: UTF8.self) }

/// ` X len,hex` for bytecode.
private func x(_ bytes: [UInt8]) -> String { "X" + String(bytes.count, radix: 16) + "," + hex(bytes) }

/// `reg 0 (rax); const8 n; equal; end`: `$rax == n`.
private func raxEquals(_ n: UInt8) -> [UInt8] { code([Op.reg, 0, 0, Op.const8, n, Op.equal, Op.end]) }

/// `printf "rax=%d\n", $rax`.
private let printRax: [UInt8] = {
    let text = Array("rax=%d\\n".utf8) + [0]
    return code([Op.reg, 0, 0, Op.const8, 0, Op.const8, 0, Op.printf, 1, be(UInt64(text.count), 2), text, Op.end])
}()

/// A FakeTarget that also takes conditions and commands; what it was given is logged.
final class AgentTarget: BreakpointAgentTarget {
    let inner = FakeTarget()
    var options: [(BreakpointKind, UInt64, BreakpointOptions)] = []

    var threads: [ThreadID] { inner.threads }
    func threadName(_ thread: ThreadID) -> String { inner.threadName(thread) }
    func threadExtraInfo(_ thread: ThreadID) -> String { inner.threadExtraInfo(thread) }
    func readRegisters(thread: ThreadID) throws(TargetError) -> X86_64Registers { try inner.readRegisters(thread: thread) }
    func writeRegisters(_ r: X86_64Registers, thread: ThreadID) throws(TargetError) { try inner.writeRegisters(r, thread: thread) }
    func readMemory(address: UInt64, count: Int, thread: ThreadID) throws(TargetError) -> [UInt8] {
        try inner.readMemory(address: address, count: count, thread: thread)
    }
    func writeMemory(_ bytes: [UInt8], address: UInt64, thread: ThreadID) throws(TargetError) {
        try inner.writeMemory(bytes, address: address, thread: thread)
    }
    func insertBreakpoint(_ kind: BreakpointKind, address: UInt64, length: Int) throws(TargetError) {
        try inner.insertBreakpoint(kind, address: address, length: length)
    }
    func insertBreakpoint(_ kind: BreakpointKind, address: UInt64, length: Int, options: BreakpointOptions) throws(TargetError) {
        try inner.insertBreakpoint(kind, address: address, length: length)
        self.options.append((kind, address, options))
    }
    func removeBreakpoint(_ kind: BreakpointKind, address: UInt64, length: Int) throws(TargetError) {
        try inner.removeBreakpoint(kind, address: address, length: length)
    }
    func resume(_ plan: ResumePlan) throws(TargetError) { try inner.resume(plan) }
    func interrupt() { inner.interrupt() }
    func kill() { inner.kill() }
    func detach() { inner.detach() }
    func monitor(_ command: String) -> String { inner.monitor(command) }
    func restart() throws(TargetError) -> StopEvent { try inner.restart() }
}

@Suite struct BreakpointOptionsTests {
    @Test func conditionsParse() throws {
        let one = raxEquals(5), two = raxEquals(7)
        guard case .insertBreakpointWithOptions(.software, 0x100067, 1, let options) = parse("Z0,100067,1;" + x(one)) else {
            Issue.record("not parsed with options")
            return
        }
        #expect(options.conditions.map(\.bytes) == [one])
        #expect(options.commands.isEmpty)
        // gdb concatenates the conditions of every location at the address; `;` between them is
        // accepted too.
        for text in ["Z1,2000,1;" + x(one) + x(two), "Z1,2000,1;" + x(one) + ";" + x(two)] {
            guard case .insertBreakpointWithOptions(.hardware, 0x2000, 1, let both) = parse(text) else {
                Issue.record("\(text) not parsed")
                continue
            }
            #expect(both.conditions.map(\.bytes) == [one, two])
        }
    }

    @Test func commandsParse() {
        let text = "Z0,1000e0,1;" + x(raxEquals(1)) + ";cmds:1," + x(printRax) + x(printRax)
        guard case .insertBreakpointWithOptions(.software, 0x1000e0, 1, let options) = parse(text) else {
            Issue.record("not parsed")
            return
        }
        #expect(options.conditions.count == 1)
        #expect(options.commands.map(\.bytes) == [printRax, printRax])
        #expect(options.persist)
        guard case .insertBreakpointWithOptions(_, _, _, let only) = parse("Z0,10,1;cmds:0," + x(printRax)) else {
            Issue.record("not parsed")
            return
        }
        #expect(only.conditions.isEmpty && only.commands.count == 1 && !only.persist)
    }

    @Test func plainPacketsStayPlain() {
        #expect(parse("Z0,1000,1") == .insertBreakpoint(.software, address: 0x1000, kind: 1))
        #expect(parse("Z0,1000,1;") == .insertBreakpoint(.software, address: 0x1000, kind: 1))
        // gdb never sends options with `z`, and watchpoints take none: they are ignored there.
        #expect(parse("z0,1000,1;" + x(raxEquals(1))) == .removeBreakpoint(.software, address: 0x1000, kind: 1))
        #expect(parse("Z2,1000,4;" + x(raxEquals(1))) == .insertBreakpoint(.writeWatch, address: 0x1000, kind: 4))
    }

    @Test func badOptionsAreMalformed() {
        let bad = [
            "Z0,1000,1;X3,13",                 // shorter than its length
            "Z0,1000,1;X2,2727",               // `end` with nothing to test
            "Z0,1000,1;X1,ff",                 // unknown opcode
            "Z0,1000,1;X3,2201",               // falls off the end
            "Z0,1000,1;Xzz,00",                // bad length
            "Z0,1000,1;X2,22",                 // odd hex
            "Z0,1000,1;X1,02",                 // stack underflow
            "Z0,1000,1;X5,2101002227",         // jump into an instruction... or out of range
            "Z0,1000,1;Q12",                   // unknown option
            "Z0,1000,1;cmds:2," + x(printRax), // persist must be 0 or 1
            "Z0,1000,1;cmds:0" ,               // no comma
            "Z0,1000,1;X100000,00",            // far too long
        ]
        for text in bad {
            guard case .malformed = parse(text) else {
                Issue.record("\(text) was accepted: \(parse(text))")
                continue
            }
        }
    }

    @Test func decideOrsConditionsAndCommandsNeverStop() throws {
        let c = FakeAgentContext()
        c.registers[0] = 7
        let five = try AgentExpression(validating: raxEquals(5), isCondition: true)
        let seven = try AgentExpression(validating: raxEquals(7), isCondition: true)
        let printer = try AgentExpression(validating: printRax, isCondition: false)
        var out: [UInt8] = []
        #expect(BreakpointOptions(conditions: [five, seven]).decide(in: c, output: &out))
        #expect(!BreakpointOptions(conditions: [five]).decide(in: c, output: &out))
        #expect(BreakpointOptions().decide(in: c, output: &out))
        #expect(out.isEmpty)
        // dprintf: prints where the condition holds, and never stops.
        #expect(!BreakpointOptions(conditions: [five], commands: [printer]).decide(in: c, output: &out))
        #expect(out.isEmpty)
        #expect(!BreakpointOptions(conditions: [seven], commands: [printer]).decide(in: c, output: &out))
        #expect(!BreakpointOptions(commands: [printer, printer]).decide(in: c, output: &out))
        #expect(String(decoding: out, as: UTF8.self) == "rax=7\nrax=7\nrax=7\n")
    }

    @Test func randomOptionTextNeverTraps() {
        var rng = FuzzTests.SplitMix(state: 0x5EED)
        let alphabet = Array("X0123456789abcdef,;cmds:".utf8)
        for _ in 0..<20_000 {
            let count = Int(rng.next() % 40)
            let text = (0..<count).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            _ = Command(parsing: Array("Z0,1000,1;".utf8) + text)
        }
    }
}

@Suite struct AgentSessionTests {
    final class AgentHarness {
        let target = AgentTarget()
        let session: Session
        init() {
            session = Session(target: target)
            _ = session.receive(gdbPacket("QStartNoAckMode"))
        }
        func send(_ payload: String) -> [String] { parseStubOutput(session.receive(gdbPacket(payload))) ?? ["<bad framing>"] }
    }

    @Test func advertisedOnlyByTargetsThatDecide() {
        let h = AgentHarness()
        #expect(h.send("qSupported:swbreak+") == [
            "PacketSize=20000;qXfer:features:read+;qXfer:threads:read+;QStartNoAckMode+;swbreak+;hwbreak+;vContSupported+;binary-upload+;ConditionalBreakpoints+;BreakpointCommands+",
        ])
        let plain = Harness()
        #expect(plain.send("qSupported:swbreak+").first?.contains("ConditionalBreakpoints") == false)
        // A target that cannot decide answers the options with the empty packet.
        #expect(plain.send("Z0,1000,1;" + x(raxEquals(1))) == [""])
        #expect(plain.target.calls.isEmpty)
    }

    @Test func optionsReachTheTarget() {
        let h = AgentHarness()
        #expect(h.send("Z0,100067,1;" + x(raxEquals(5)) + x(raxEquals(6))) == ["OK"])
        #expect(h.target.options.count == 1)
        #expect(h.target.options.first?.2.conditions.count == 2)
        // gdb re-sends Z0 at the same address with the updated list: the target replaces it.
        #expect(h.send("Z0,100067,1;" + x(raxEquals(5))) == ["OK"])
        #expect(h.target.options.count == 2)
        #expect(h.target.inner.calls == [.insert(.software, 0x100067, 1), .insert(.software, 0x100067, 1)])
    }

    @Test func badBytecodeGetsAnErrorAndTheSessionGoesOn() {
        let h = AgentHarness()
        #expect(h.send("Z0,1000,1;X1,ff") == ["E01"])
        #expect(h.send("Z0,1000,1;X2,2227") == ["E01"])
        #expect(h.target.inner.calls.isEmpty)
        #expect(h.send("m1000,2") == ["0001"])
    }

    @Test func targetErrorsAreReported() {
        let h = AgentHarness()
        h.target.inner.failure = .errno(14)
        #expect(h.send("Z0,1000,1;" + x(raxEquals(1))) == ["E0e"])
    }
}

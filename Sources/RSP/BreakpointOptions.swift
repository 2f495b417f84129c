// The target-side part of a `Z0`/`Z1` packet, after `type,addr,kind`: conditions
// (`;X len,bytecode`, any number, concatenated or `;`-separated) and commands
// (`;cmds:persist,X len,bytecode...`), as gdb sends them once we advertise
// `ConditionalBreakpoints+` and `BreakpointCommands+`.

/// What gdb asks the target to decide at a breakpoint without stopping.
public struct BreakpointOptions: Sendable, Equatable {
    /// Stop only if one of these is true (none: always). gdb ORs the conditions of every location
    /// at the address.
    public var conditions: [AgentExpression] = []
    /// Run at a hit whose condition holds, instead of stopping (agent `dprintf`).
    public var commands: [AgentExpression] = []
    /// gdb's `persist` flag: keep the commands after gdb disconnects (we do not).
    public var persist = false

    public init(conditions: [AgentExpression] = [], commands: [AgentExpression] = [], persist: Bool = false) {
        self.conditions = conditions
        self.commands = commands
        self.persist = persist
    }

    struct OptionError: Error { var reason: String }

    public var isEmpty: Bool { conditions.isEmpty && commands.isEmpty }

    /// Parses the text after the first `;`; a message saying what is wrong otherwise.
    static func parse(_ text: ArraySlice<UInt8>) -> Result<BreakpointOptions, OptionError> {
        var options = BreakpointOptions()
        var rest = text
        var inCommands = false
        while let first = rest.first {
            if first == UInt8(ascii: ";") {
                rest = rest.dropFirst()
                continue
            }
            if first == UInt8(ascii: "c") {
                guard rest.starts(with: "cmds:".utf8), rest.count >= 7,
                      let flag = rest.dropFirst(5).first, flag == UInt8(ascii: "0") || flag == UInt8(ascii: "1"),
                      rest[rest.startIndex + 6] == UInt8(ascii: ",")
                else { return .failure(OptionError(reason: "expected 'cmds:persist,X...'")) }
                options.persist = flag == UInt8(ascii: "1")
                inCommands = true
                rest = rest.dropFirst(7)
                continue
            }
            guard first == UInt8(ascii: "X") else { return .failure(OptionError(reason: "unknown breakpoint option")) }
            rest = rest.dropFirst()
            guard let comma = rest.firstIndex(of: UInt8(ascii: ",")), let length = Hex.parseInt(rest[..<comma]),
                  length <= AgentExpression.maximumLength
            else { return .failure(OptionError(reason: "expected 'X len,bytecode'")) }
            rest = rest[(comma + 1)...]
            guard rest.count >= 2 * length, let bytes = Hex.decode(rest.prefix(2 * length)) else {
                return .failure(OptionError(reason: "agent expression shorter than its length"))
            }
            rest = rest.dropFirst(2 * length)
            do {
                let expression = try AgentExpression(validating: bytes, isCondition: !inCommands)
                if inCommands { options.commands.append(expression) } else { options.conditions.append(expression) }
            } catch {
                return .failure(OptionError(reason: "\(error)"))
            }
        }
        return .success(options)
    }

    /// What a hit does: whether it stops, and what the commands print. A condition that cannot be
    /// evaluated holds (gdb evaluates it again); commands run only where the condition holds,
    /// and a breakpoint with commands never stops (as gdbserver does).
    public func decide(in context: some AgentContext, output: inout [UInt8]) -> Bool {
        if !conditions.isEmpty && !conditions.contains(where: { $0.conditionHolds(in: context) }) { return false }
        guard !commands.isEmpty else { return true }
        for command in commands { _ = command.evaluate(in: context, output: &output) }
        return false
    }
}

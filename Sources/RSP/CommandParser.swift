// Packet payload -> Command. Every argument goes through the checked parsers in Hex.swift, so no
// input, however hostile, can trap: it becomes `.malformed(reason)` instead.

extension Command {
    /// Parses one unescaped, run-length-expanded packet payload.
    init(parsing payload: [UInt8]) {
        let p = payload[...]
        guard let first = p.first else {
            self = .unknown("")
            return
        }
        let rest = p.dropFirst()
        switch first {
        case UInt8(ascii: "?"): self = rest.isEmpty ? .haltReason : .malformed("'?' takes no arguments")
        case UInt8(ascii: "g"): self = rest.isEmpty ? .readRegisters : .malformed("'g' takes no arguments")
        case UInt8(ascii: "G"): self = Hex.decode(rest).map { .writeRegisters($0) } ?? .malformed("bad register hex")
        case UInt8(ascii: "p"): self = Hex.parseInt(rest).map { .readRegister($0) } ?? .malformed("bad register number")
        case UInt8(ascii: "P"): self = Command.parseWriteRegister(rest)
        case UInt8(ascii: "m"): self = Command.parseRead(rest, binary: false)
        case UInt8(ascii: "x"): self = Command.parseRead(rest, binary: true)
        case UInt8(ascii: "M"): self = Command.parseWrite(rest, binary: false)
        case UInt8(ascii: "X"): self = Command.parseWrite(rest, binary: true)
        case UInt8(ascii: "c"), UInt8(ascii: "s"):
            var address: UInt64?
            if !rest.isEmpty {
                guard let parsed = Hex.parseUInt64(rest) else {
                    self = .malformed("bad resume address")
                    return
                }
                address = parsed
            }
            self = first == UInt8(ascii: "c") ? .continue(signal: nil, address: address)
                                              : .step(signal: nil, address: address)
        case UInt8(ascii: "C"), UInt8(ascii: "S"): self = Command.parseResumeWithSignal(rest, step: first == UInt8(ascii: "S"))
        case UInt8(ascii: "H"): self = Command.parseSetThread(rest)
        case UInt8(ascii: "T"): self = Command.parseThread(rest).map { .threadAlive($0) } ?? .malformed("bad thread id")
        case UInt8(ascii: "Z"), UInt8(ascii: "z"): self = Command.parseBreakpoint(rest, insert: first == UInt8(ascii: "Z"))
        case UInt8(ascii: "k"): self = .kill
        case UInt8(ascii: "D"): self = .detach
        case UInt8(ascii: "!"): self = .extendedMode
        case UInt8(ascii: "R"): self = .restart
        case UInt8(ascii: "q"): self = Command.parseQuery(p)
        case UInt8(ascii: "Q") where p.starts(with: "Qqemu.".utf8): self = QEMUCommand.parse(p).map { .qemu($0) } ?? .unknown(Command.describe(p))
        case UInt8(ascii: "Q"): self = Command.matches(p, "QStartNoAckMode") ? .startNoAckMode : .unknown(Command.describe(p))
        case UInt8(ascii: "v"): self = Command.parseV(p)
        default: self = .unknown(Command.describe(p))
        }
    }

    // MARK: Registers and memory

    private static func parseWriteRegister(_ args: ArraySlice<UInt8>) -> Command {
        guard let (number, value) = split(args, at: "="),
              let regnum = Hex.parseInt(number),
              let bytes = Hex.decode(value)
        else { return .malformed("expected 'P n=hex'") }
        return .writeRegister(regnum, value: bytes)
    }

    /// `addr,len` as used by `m`, `x`, `M` and `X`.
    private static func parseAddressLength(_ args: ArraySlice<UInt8>) -> (UInt64, Int)? {
        guard let (a, l) = split(args, at: ","),
              let address = Hex.parseUInt64(a),
              let length = Hex.parseInt(l)
        else { return nil }
        return (address, length)
    }

    private static func parseRead(_ args: ArraySlice<UInt8>, binary: Bool) -> Command {
        guard let (address, length) = parseAddressLength(args) else { return .malformed("expected 'addr,len'") }
        return .readMemory(address: address, length: length, binary: binary)
    }

    private static func parseWrite(_ args: ArraySlice<UInt8>, binary: Bool) -> Command {
        guard let (header, data) = split(args, at: ":"),
              let (address, length) = parseAddressLength(header)
        else { return .malformed("expected 'addr,len:data'") }
        let bytes = binary ? Array(data) : Hex.decode(data)
        guard let bytes else { return .malformed("bad memory hex") }
        guard bytes.count == length else { return .malformed("length \(length) but \(bytes.count) data bytes") }
        // The last byte written must not lie past the top of the address space.
        guard length == 0 || UInt64(length - 1) <= UInt64.max - address else {
            return .malformed("write wraps around the address space")
        }
        return .writeMemory(address: address, bytes: bytes)
    }

    // MARK: Resuming and threads

    private static func parseSignal(_ text: ArraySlice<UInt8>) -> UInt8? {
        guard let value = Hex.parseUInt64(text), value <= UInt64(UInt8.max) else { return nil }
        return UInt8(value)
    }

    private static func parseResumeWithSignal(_ args: ArraySlice<UInt8>, step: Bool) -> Command {
        let (sigText, addressText) = split(args, at: ";") ?? (args, nil)
        guard let signal = parseSignal(sigText) else { return .malformed("bad signal number") }
        var address: UInt64?
        if let addressText {
            guard let parsed = Hex.parseUInt64(addressText) else { return .malformed("bad resume address") }
            address = parsed
        }
        return step ? .step(signal: signal, address: address) : .continue(signal: signal, address: address)
    }

    /// `-1`, `0`, or a positive hex thread id (no `p pid.tid`: we do not offer multiprocess).
    static func parseThread(_ text: ArraySlice<UInt8>) -> ThreadSelector? {
        if text.elementsEqual("-1".utf8) { return .all }
        guard let id = Hex.parseInt(text) else { return nil }
        return id == 0 ? .any : .thread(id)
    }

    private static func parseSetThread(_ args: ArraySlice<UInt8>) -> Command {
        guard let op = args.first, let thread = parseThread(args.dropFirst()) else {
            return .malformed("expected 'H{g|c}tid'")
        }
        switch op {
        case UInt8(ascii: "g"): return .setGeneralThread(thread)
        case UInt8(ascii: "c"): return .setContinueThread(thread)
        default: return .unknown("H" + describe(args))
        }
    }

    /// The part after `vCont;`: actions separated by `;`, each `c`, `s`, `t`, `Csig`, `Ssig` or
    /// `rstart,end`, optionally followed by `:tid`.
    private static func parseVCont(_ args: ArraySlice<UInt8>) -> Command {
        var actions: [VContAction] = []
        for item in args.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false) {
            let (actionText, threadText) = split(item, at: ":") ?? (item, nil)
            var thread: ThreadSelector?
            if let threadText {
                guard let parsed = parseThread(threadText) else { return .malformed("bad vCont thread id") }
                thread = parsed
            }
            guard let kind = actionText.first else { return .malformed("empty vCont action") }
            let argument = actionText.dropFirst()
            let action: ResumeAction
            switch kind {
            case UInt8(ascii: "c") where argument.isEmpty: action = .continue(signal: nil)
            case UInt8(ascii: "s") where argument.isEmpty: action = .step(signal: nil)
            case UInt8(ascii: "t") where argument.isEmpty: action = .stop
            case UInt8(ascii: "C"), UInt8(ascii: "S"):
                guard let signal = parseSignal(argument) else { return .malformed("bad vCont signal") }
                action = kind == UInt8(ascii: "C") ? .continue(signal: signal) : .step(signal: signal)
            case UInt8(ascii: "r"):
                guard let (startText, endText) = split(argument, at: ","),
                      let start = Hex.parseUInt64(startText), let end = Hex.parseUInt64(endText)
                else { return .malformed("bad vCont range: expected 'rstart,end'") }
                action = .rangeStep(start: start, end: end)
            default:
                return .malformed("unsupported vCont action")
            }
            actions.append(VContAction(action: action, thread: thread))
        }
        return .vCont(actions)
    }

    // MARK: Breakpoints

    private static func parseBreakpoint(_ args: ArraySlice<UInt8>, insert: Bool) -> Command {
        // Conditions and commands (`;X...`, `;cmds:...`) follow the first `;`.
        let (head, optionText) = split(args, at: ";") ?? (args, nil)
        let fields = head
            .split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
        guard fields.count == 3,
              let type = Hex.parseInt(fields[0]),
              let address = Hex.parseUInt64(fields[1]),
              let kind = Hex.parseInt(fields[2])
        else { return .malformed("expected 'type,addr,kind'") }
        // Other types (none today) are not ours to refuse: the empty reply lets gdb fall back.
        guard let breakpointKind = BreakpointKind(rawValue: type) else {
            return .unknown((insert ? "Z" : "z") + describe(args))
        }
        if insert, let optionText, breakpointKind == .software || breakpointKind == .hardware {
            switch BreakpointOptions.parse(optionText) {
            case .failure(let error): return .malformed(error.reason)
            case .success(let options) where !options.isEmpty:
                return .insertBreakpointWithOptions(breakpointKind, address: address, kind: kind, options: options)
            case .success: break
            }
        }
        return insert ? .insertBreakpoint(breakpointKind, address: address, kind: kind)
                      : .removeBreakpoint(breakpointKind, address: address, kind: kind)
    }

    // MARK: q packets

    private static func parseQuery(_ p: ArraySlice<UInt8>) -> Command {
        if matches(p, "qC") { return .currentThread }
        if matches(p, "qfThreadInfo") { return .threadInfoFirst }
        if matches(p, "qsThreadInfo") { return .threadInfoNext }
        if matches(p, "qOffsets") { return .offsets }
        if matches(p, "qTStatus") { return .traceStatus }
        if matches(p, "qAttached") || hasPrefix(p, "qAttached:") { return .attached }
        if hasPrefix(p, "qSymbol:") { return .symbolLookup }
        if let qemu = QEMUCommand.parse(p) { return .qemu(qemu) }
        if matches(p, "qGDBServerVersion") { return .serverVersion }
        if matches(p, "qSupported") { return .supported(features: []) }
        if let args = suffix(p, after: "qSupported:") {
            let features = args.split(separator: UInt8(ascii: ";")).map { String(decoding: $0, as: UTF8.self) }
            return .supported(features: features)
        }
        if let args = suffix(p, after: "qXfer:features:read:") {
            guard let (annex, window) = split(args, at: ":"), let (offset, length) = parseWindow(window) else {
                return .malformed("expected 'qXfer:features:read:annex:off,len'")
            }
            return .readFeatures(annex: String(decoding: annex, as: UTF8.self), offset: offset, length: length)
        }
        if let args = suffix(p, after: "qXfer:threads:read:") {
            guard let (annex, window) = split(args, at: ":"), annex.isEmpty, let (offset, length) = parseWindow(window) else {
                return .malformed("expected 'qXfer:threads:read::off,len'")
            }
            return .readThreads(offset: offset, length: length)
        }
        if let args = suffix(p, after: "qThreadExtraInfo,") {
            guard case .thread(let id)? = parseThread(args) else { return .malformed("bad thread id") }
            return .threadExtraInfo(id)
        }
        if let args = suffix(p, after: "qSearch:memory:") { return parseSearch(args) }
        if let args = suffix(p, after: "qCRC:") {
            guard let (a, l) = split(args, at: ","), let address = Hex.parseUInt64(a), let length = Hex.parseUInt64(l) else {
                return .malformed("expected 'qCRC:addr,len'")
            }
            return .crc(address: address, length: length)
        }
        if let args = suffix(p, after: "qRcmd,") {
            guard let text = Hex.decode(args) else { return .malformed("bad monitor command hex") }
            return .monitor(String(decoding: text, as: UTF8.self))
        }
        return .unknown(describe(p))
    }

    /// `addr;len;pattern`: the pattern is binary and may itself contain `;`.
    private static func parseSearch(_ args: ArraySlice<UInt8>) -> Command {
        guard let (a, rest) = split(args, at: ";"), let (l, pattern) = split(rest, at: ";"),
              let address = Hex.parseUInt64(a), let length = Hex.parseUInt64(l)
        else { return .malformed("expected 'qSearch:memory:addr;len;pattern'") }
        guard !pattern.isEmpty else { return .malformed("qSearch:memory with an empty pattern") }
        return .searchMemory(address: address, length: length, pattern: Array(pattern))
    }

    /// `off,len` of a qXfer request.
    private static func parseWindow(_ text: ArraySlice<UInt8>) -> (Int, Int)? {
        guard let (o, l) = split(text, at: ","), let offset = Hex.parseInt(o), let length = Hex.parseInt(l) else {
            return nil
        }
        return (offset, length)
    }

    // MARK: v packets

    private static func parseV(_ p: ArraySlice<UInt8>) -> Command {
        if matches(p, "vCont?") { return .vContQuery }
        if let args = suffix(p, after: "vCont;") { return parseVCont(args) }
        if matches(p, "vMustReplyEmpty") { return .mustReplyEmpty }
        if matches(p, "vCtrlC") { return .ctrlC }
        if matches(p, "vRun") || hasPrefix(p, "vRun;") { return .run }
        if hasPrefix(p, "vKill;") { return .vKill }
        return .unknown(describe(p))
    }

    // MARK: Helpers

    /// Splits at the first `separator`; nil when there is none.
    private static func split(_ text: ArraySlice<UInt8>, at separator: Unicode.Scalar) -> (ArraySlice<UInt8>, ArraySlice<UInt8>)? {
        guard let i = text.firstIndex(of: UInt8(ascii: separator)) else { return nil }
        return (text[..<i], text[(i + 1)...])
    }

    private static func matches(_ p: ArraySlice<UInt8>, _ literal: StaticString) -> Bool {
        suffix(p, after: literal)?.isEmpty ?? false
    }

    private static func hasPrefix(_ p: ArraySlice<UInt8>, _ literal: StaticString) -> Bool {
        suffix(p, after: literal) != nil
    }

    private static func suffix(_ p: ArraySlice<UInt8>, after literal: StaticString) -> ArraySlice<UInt8>? {
        // SAFETY: a StaticString's UTF-8 storage is static and immutable.
        let prefix = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        guard p.count >= prefix.count, p.prefix(prefix.count).elementsEqual(prefix) else { return nil }
        return p.dropFirst(prefix.count)
    }

    /// The packet's text for `.unknown`, cut short so a huge packet cannot become a huge string.
    private static func describe(_ p: ArraySlice<UInt8>) -> String {
        String(decoding: p.prefix(64), as: UTF8.self)
    }
}

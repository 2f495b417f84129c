// What the session answers to each command while the target is stopped. Each handler returns the
// reply payloads in order; none means the command has no reply (a resume, whose reply is the later
// stop; `k`; `R`).

extension Session {
    func handleWhileRunning(_ command: Command) -> [[UInt8]] {
        guard case .ctrlC = command else { return [] }
        target.interrupt()
        return [Reply.ok]
    }

    func handle(_ command: Command) -> [[UInt8]] {
        switch command {
        case .haltReason:
            return [stopReply(lastStop)]

        // Registers and memory, on the Hg thread.
        case .readRegisters:
            return attempt { () throws(TargetError) in
                let registers = try target.readRegisters(thread: resolve(generalThread), parts: layout.gPacketParts)
                return [Hex.encode(registers.rawBytes(in: layout))]
            }
        case .writeRegisters(let data):
            // Longer than our `g` packet means gdb has another layout in mind: refuse, never guess.
            guard data.count <= layout.gPacketByteCount else { return [Reply.malformed] }
            return attempt(refusalsNamed: true) { () throws(TargetError) in
                let thread = resolve(generalThread)
                let old = try target.readRegisters(thread: thread, parts: layout.gPacketParts)
                var registers = old
                registers.update(fromRawBytes: data[...], in: layout)
                try write(registers, over: old, thread: thread)
                return [Reply.ok]
            }
        case .readRegister(let regnum):
            guard layout.registers.indices.contains(regnum) else { return [Reply.malformed] }
            return attempt { () throws(TargetError) in
                let registers = try target.readRegisters(thread: resolve(generalThread),
                                                         parts: layout.registers[regnum].slot.part)
                return [Hex.encode(registers.rawBytes(ofRegister: regnum, in: layout) ?? [])]
            }
        case .writeRegister(let regnum, let value):
            guard layout.registers.indices.contains(regnum),
                  value.count == layout.registers[regnum].byteCount
            else { return [Reply.malformed] }
            return attempt(refusalsNamed: true) { () throws(TargetError) in
                let thread = resolve(generalThread)
                let old = try target.readRegisters(thread: thread, parts: layout.registers[regnum].slot.part)
                var registers = old
                _ = registers.setRawBytes(value[...], ofRegister: regnum, in: layout)
                try write(registers, over: old, thread: thread)
                return [Reply.ok]
            }
        case .readMemory(let address, let length, let binary):
            return [memoryReadReply(address: address, length: length, binary: binary, framed: false)]
        case .searchMemory(let address, let length, let pattern):
            return searchReply(address: address, length: length, pattern: pattern)
        case .crc(let address, let length):
            return crcReply(address: address, length: length)
        case .writeMemory(let address, let bytes):
            // gdb probes for `X` with a zero-length write.
            guard !bytes.isEmpty else { return [Reply.ok] }
            return attempt { () throws(TargetError) in
                try target.writeMemory(bytes, address: address, thread: resolve(generalThread))
                return [Reply.ok]
            }

        // Resuming.
        case .continue(let signal, let address):
            return resumeLegacy(step: false, signal: signal, address: address)
        case .step(let signal, let address):
            return resumeLegacy(step: true, signal: signal, address: address)
        case .vContQuery:
            return [Array("vCont;c;C;s;S;t;r".utf8)]
        case .vCont(let actions):
            return resume(actions)
        case .ctrlC:
            return [Reply.ok]

        // Threads.
        case .setGeneralThread(let selector):
            guard exists(selector) else { return [Reply.noSuchThread] }
            generalThread = selector
            return [Reply.ok]
        case .setContinueThread(let selector):
            guard exists(selector) else { return [Reply.noSuchThread] }
            continueThread = selector
            return [Reply.ok]
        case .threadAlive(let selector):
            guard case .thread = selector, exists(selector) else { return [Reply.noSuchThread] }
            return [Reply.ok]
        case .currentThread:
            var reply = Array("QC".utf8)
            Reply.appendThreadID(currentThread, minimumDigits: 1, to: &reply)
            return [reply]
        case .threadInfoFirst:
            return [ThreadList.firstReply(target.threads)]
        case .threadInfoNext:
            return [[UInt8(ascii: "l")]]
        case .threadExtraInfo(let thread):
            guard target.threads.contains(thread) else { return [Reply.noSuchThread] }
            return [Hex.encode(Array(target.threadExtraInfo(thread).utf8))]
        case .readThreads(let offset, let length):
            return [xferWindow(ThreadList.xml(for: target), offset: offset, length: min(length, Self.packetSize))]

        // Queries and modes.
        case .supported(let features):
            errorMessagesAllowed = features.contains("error-message+")
            return [Self.supportedReply + (target is any BreakpointAgentTarget ? Self.agentFeatures : [])]
        case .startNoAckMode:
            // The `+` for this packet is already out; from here on neither side acknowledges.
            noAckMode = true
            return [Reply.ok]
        case .readFeatures(let annex, let offset, let length):
            guard annex == TargetDescription.annex else { return [Reply.badAnnex] }
            return [xferWindow(targetDescription, offset: offset, length: min(length, Self.packetSize))]
        case .attached:
            // "Attached to an existing process": on quit gdb detaches and leaves the VM running
            // instead of killing it, as with QEMU.
            return [[UInt8(ascii: "1")]]
        case .offsets:
            // QEMU's system emulator answers nothing here, and pwndbg and GEF take a `Text=`
            // reply for QEMU's user-mode emulator (a process, not a machine).
            return [Reply.empty]
        case .qemu(let command):
            return handleQEMU(command)
        case .serverVersion:
            return serverVersionReply()
        case .symbolLookup:
            return [Reply.ok]
        case .traceStatus, .mustReplyEmpty, .unknown:
            return [Reply.empty]
        case .malformed:
            return [Reply.malformed]
        case .monitor(let text):
            let output = Array(target.monitor(text).utf8)
            return outputPackets(output) + [Reply.ok]

        // Breakpoints.
        case .insertBreakpoint(let kind, let address, let length):
            return attempt { () throws(TargetError) in
                try target.insertBreakpoint(kind, address: address, length: length)
                return [Reply.ok]
            }
        case .insertBreakpointWithOptions(let kind, let address, let length, let options):
            guard let agent = target as? any BreakpointAgentTarget else { return [Reply.empty] }
            return attempt { () throws(TargetError) in
                try agent.insertBreakpoint(kind, address: address, length: length, options: options)
                return [Reply.ok]
            }
        case .removeBreakpoint(let kind, let address, let length):
            return attempt { () throws(TargetError) in
                try target.removeBreakpoint(kind, address: address, length: length)
                return [Reply.ok]
            }

        // Ending and restarting.
        case .kill:
            // `k` has no reply in either mode.
            target.kill()
            endProcess()
            return []
        case .vKill:
            target.kill()
            endProcess()
            return [Reply.ok]
        case .detach:
            target.detach()
            isClosed = true
            return [Reply.ok]
        case .extendedMode:
            isExtended = true
            return [Reply.ok]
        case .run:
            return attempt { () throws(TargetError) in
                let event = try target.restart()
                lastStop = event
                return [stopReply(event)]
            }
        case .restart:
            // `R` has no reply, not even an error; a failure shows in the next `?`.
            if let event = try? target.restart() { lastStop = event }
            return []
        }
    }

    // MARK: Helpers

    /// Runs a target call; a TargetError becomes its error reply. With `refusalsNamed`, a
    /// refused register write is `E.text` even for a gdb that did not offer `error-message+`:
    /// every gdb treats `E.` as an error and shows the text in "Could not write register".
    private func attempt(refusalsNamed: Bool = false, _ body: () throws(TargetError) -> [[UInt8]]) -> [[UInt8]] {
        do {
            return try body()
        } catch {
            return [Reply.error(error, messagesAllowed: errorMessagesAllowed || refusalsNamed)]
        }
    }

    /// Writes a changed register file; a refusal names the registers that changed and the values
    /// written, as gdb shows them (`cr4: the CPU refused 0x...`).
    private func write(_ registers: X86_64Registers, over old: X86_64Registers, thread: ThreadID) throws(TargetError) {
        do {
            try target.writeRegisters(registers, thread: thread)
        } catch .message(let reason) {
            let changed = layout.registers.indices.filter {
                registers.rawBytes(ofRegister: $0, in: layout) != old.rawBytes(ofRegister: $0, in: layout)
            }
            guard !changed.isEmpty else { throw .message(reason) }
            let shown = changed.prefix(4)
            let values = shown.map { regnum in
                let bytes = registers.rawBytes(ofRegister: regnum, in: layout) ?? []
                // Most significant digit first, as gdb prints a register in hex.
                let hex = bytes.reversed().map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
                let digits = hex.drop { $0 == "0" }
                return "0x" + (digits.isEmpty ? "0" : digits)
            }
            let more = changed.count > shown.count ? ", ..." : ""
            let names = shown.map { layout.registers[$0].name }.joined(separator: ", ")
            throw .message("\(names)\(more): the CPU refused \(values.joined(separator: ", "))\(more) (\(reason))")
        }
    }

    /// The thread of the last stop, or the first thread when the guest has exited.
    var currentThread: ThreadID {
        if case .stopped(let thread, _, _) = lastStop { return thread }
        return target.threads.first ?? 1
    }

    /// `0` and `-1` act on the current thread wherever one thread is needed.
    func resolve(_ selector: ThreadSelector) -> ThreadID {
        if case .thread(let thread) = selector { return thread }
        return currentThread
    }

    private func exists(_ selector: ThreadSelector) -> Bool {
        guard case .thread(let thread) = selector else { return true }
        return target.threads.contains(thread)
    }

    func stopReply(_ event: StopEvent) -> [UInt8] {
        var registers: X86_64Registers?
        if case .stopped(let thread, _, _) = event {
            registers = try? target.stopRegisters(thread: thread)
        }
        return Reply.stop(event, registers: registers, layout: layout)
    }

    /// What `?` reports for a killed guest; gdb's number for SIGKILL, like Linux's.
    static let sigkill: UInt8 = 9

    /// After `k`/`vKill`: outside extended mode the connection ends; in it, `?` reports the
    /// guest killed until `vRun` starts it again.
    private func endProcess() {
        if isExtended {
            lastStop = .terminated(signal: Self.sigkill)
        } else {
            isClosed = true
        }
    }

    /// `c`/`C`/`s`/`S`: `c` resumes every thread, delivering the signal to the Hc thread; `s`
    /// steps only the Hc thread and leaves the others stopped (as QEMU does). An address moves
    /// that thread's rip first.
    private func resumeLegacy(step: Bool, signal: UInt8?, address: UInt64?) -> [[UInt8]] {
        let thread = resolve(continueThread)
        if let address {
            let failure = attempt { () throws(TargetError) in
                var registers = try target.readRegisters(thread: thread)
                registers.rip = address
                try target.writeRegisters(registers, thread: thread)
                return []
            }
            guard failure.isEmpty else { return failure }
        }
        var actions: [ThreadID: ResumeAction] = [:]
        if step {
            actions[thread] = .step(signal: signal)
        } else {
            for other in target.threads { actions[other] = .continue(signal: nil) }
            actions[thread] = .continue(signal: signal)
        }
        return start(ResumePlan(actions: actions))
    }

    /// `vCont`: for each thread the leftmost action that names it applies; an action without a
    /// thread (or with -1) names every thread not named yet; `0` names the current thread.
    private func resume(_ vCont: [VContAction]) -> [[UInt8]] {
        let threads = target.threads
        var actions: [ThreadID: ResumeAction] = [:]
        for item in vCont {
            switch item.thread {
            case .thread(let thread)?:
                guard threads.contains(thread) else { return [Reply.noSuchThread] }
                if actions[thread] == nil { actions[thread] = item.action }
            case .any?:
                if actions[currentThread] == nil { actions[currentThread] = item.action }
            case .all?, nil:
                for thread in threads where actions[thread] == nil { actions[thread] = item.action }
            }
        }
        // A plan that runs nothing would never produce the stop reply gdb now waits for.
        guard actions.values.contains(where: { $0 != .stop }) else { return [Reply.malformed] }
        return start(ResumePlan(actions: actions))
    }

    private func start(_ plan: ResumePlan) -> [[UInt8]] {
        let failure = attempt { () throws(TargetError) in
            try target.resume(plan)
            return []
        }
        if failure.isEmpty { isRunning = true }
        return failure
    }
}

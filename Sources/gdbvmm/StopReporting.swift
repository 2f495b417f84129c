import Foundation
import KVMRunLoop
import RSP

/// What the controller makes of vCPU stops: all-stop, the one stop reply gdb gets, the end of
/// the VM, and stops that arrive with no gdb to tell.
extension Controller {
    func handleStops() {
        let records = machine.stops.drain()
        // Before any stop reply: dprintf text printed before the stop.
        forwardAgentOutput()
        if records.isEmpty { return }
        guard let session, session.isRunning else {
            for (vcpu, stop) in records { absorbWhileDetached(vcpu: vcpu, stop: stop) }
            return
        }
        var (fallback, kernelEntries) = collect(records)
        if !hasReportable && !interruptRequested && fallback.isEmpty && kernelEntries.isEmpty {
            // A halted vCPU alone is not news for gdb while others still run.
            if allHalted { finishAttached(status: 0) }
            return
        }
        // All-stop: everyone parks before gdb hears of anything. What the others stopped for
        // meanwhile stays pending on them, to be reported at a later resume. A Ctrl-C parks
        // at once; a stop gives the vCPUs that have not run yet their turn first.
        machine.pauseAll(fairly: !interruptRequested)
        let late = machine.stops.takeAll()
        let (lateFallback, lateEntries) = collect(late)
        fallback += lateFallback
        for (vcpu, slot) in kernelEntries + lateEntries { enterKernel(vcpu: vcpu, slot: slot) }
        // Conditions and dprintf at int3s (no debug register was free): decided with everyone
        // parked; a false one steps past its int3 here and runs on below like the fallback.
        for (vcpu, stop) in records + late where stop == .softwareBreakpoint && stopBook.pending[vcpu] == stop {
            guard machine.agentRunsOnAtInt3(vcpu: vcpu) else { continue }
            stopBook.discard(vcpu: vcpu)
            let stop: VCPUStop
            do {
                stop = try machine.stepPastInt3(vcpu)
            } catch {
                stop = .crash(Crash(.internalError, "vCPU \(vcpu): stepping past a breakpoint: \(error)"))
            }
            machine.note(stop, vcpu: vcpu)
            if stop != .stepped || lastPlan[vcpu] == .step { stopBook.record(stop, vcpu: vcpu) }
        }
        forwardAgentOutput()
        for vcpu in fallback {
            let stop: VCPUStop
            do {
                stop = try machine.stepUntrapped(vcpu)
            } catch {
                stop = .crash(Crash(.internalError, "vCPU \(vcpu): stepping past a watched page: \(error)"))
            }
            machine.note(stop, vcpu: vcpu)
            // Running, the step is only news if it hit a watch or ended otherwise.
            if stop != .stepped || lastPlan[vcpu] == .step || leftRange(vcpu) { stopBook.record(stop, vcpu: vcpu) }
        }
        if !hasReportable && !interruptRequested {
            // Only the watchpoint fallback stopped things: run on as gdb asked.
            let plan = lastPlan.filter { machine.status[$0.key] == .runnable || machine.status[$0.key] == .waitingForSIPI }
            if plan.isEmpty { if allHalted { finishAttached(status: 0) }; return }
            do {
                try machine.resume(plan, order: stopBook.resumeOrder(plan.keys))
            } catch {
                stopBook.record(.crash(Crash(.internalError, "resuming: \(error)")), vcpu: currentVCPU)
                reportNext()
            }
            return
        }
        reportNext()
    }

    /// The vCPU was range stepping and the watchpoint fallback's step took it out of the range.
    private func leftRange(_ vcpu: Int) -> Bool {
        guard case .rangeStep(let start, let end)? = lastPlan[vcpu], let r = machine.parkedRegisters(vcpu) else { return false }
        return r.regs.rip < start || r.regs.rip >= end
    }

    /// A stop gdb can be told now: one of a vCPU it resumed.
    private var hasReportable: Bool {
        lastPlan.keys.contains { stopBook.pending[$0] != nil }
    }

    /// Notes each stop, keeps the reportable ones; returns the vCPUs that need the watchpoint
    /// fallback's step, and those that stopped on the debug register gdbvmm watches a bzImage's
    /// jump to its decompressed kernel with (with the slot).
    private func collect(_ records: [(vcpu: Int, stop: VCPUStop)]) -> (fallback: [Int], kernelEntries: [(Int, Int)]) {
        var fallback: [Int] = []
        var kernelEntries: [(Int, Int)] = []
        for (vcpu, stop) in records {
            machine.note(stop, vcpu: vcpu)
            if stop == .untrappedStepNeeded {
                fallback.append(vcpu)
            } else if case .hardwareBreakpoint(let slot) = stop, machine.watchesForKernelEntry(slot: slot) {
                kernelEntries.append((vcpu, slot))
            } else {
                stopBook.record(stop, vcpu: vcpu)
            }
        }
        return (fallback, kernelEntries)
    }

    /// The decompressor jumped to the kernel (or something else ran at that address): gdb's
    /// breakpoints on the kernel are planted now, and the vCPU runs on as gdb asked.
    private func enterKernel(vcpu: Int, slot: Int) {
        guard case .elsewhere(let count) = machine.kernelEntered(slot: slot, vcpu: vcpu), count > 0 else { return }
        let text = "gdbvmm: the kernel did not start at its link address (KASLR placed it elsewhere?): the \(count) "
            + "breakpoint(s) set on it before boot cannot hit. Boot with nokaslr on the command line.\n"
        FileHandle.standardError.write(Data(text.utf8))
        tellGDB(text)
    }

    /// A line for gdb's console (an `O` packet), while the guest runs: before its stop reply.
    func tellGDB(_ text: String) {
        if let session, let connection {
            let bytes = session.consoleOutput(Array(text.utf8))
            if !bytes.isEmpty { _ = connection.send(bytes) }
        }
    }

    /// Tells gdb one stop: the guest's end, a crash, or the next vCPU round robin; a Ctrl-C with
    /// nothing else to tell is SIGINT on the current vCPU. Only vCPUs gdb resumed can report:
    /// gdb holds the others stopped (a step over a breakpoint resumes one thread alone), so
    /// their pending stops wait until gdb resumes them.
    private func reportNext() {
        interruptRequested = false
        guard let (vcpu, stop) = stopBook.takeNext(among: Set(lastPlan.keys)) else {
            if allHalted { finishAttached(status: 0); return }
            stopBook.reported(vcpu: currentVCPU)
            deliver(.stopped(thread: currentVCPU + 1, signal: GDBSignal.sigint, reason: .none))
            return
        }
        if case .exit(let status) = stop {
            finishAttached(status: status)
            return
        }
        currentVCPU = vcpu
        deliver(event(for: stop, vcpu: vcpu))
    }

    /// Every vCPU sits in HLT with interrupts off: the guest is done (status 0).
    func allHaltedWhileRunning() {
        machine.pauseAll()
        _ = machine.stops.drain()
        if session != nil { finishAttached(status: 0) } else { finalStatus = 0 }
    }

    var allHalted: Bool {
        machine.status.contains(.halted)
            && machine.status.allSatisfy { $0 == .halted || $0 == .waitingForSIPI }
    }

    func event(for stop: VCPUStop, vcpu: Int) -> StopEvent {
        let thread = vcpu + 1
        switch stop {
        case .softwareBreakpoint:
            if let breakpoint = machine.aliasedBreakpoint(vcpu: vcpu) {
                // Not at gdb's address, so gdb could not tell it is its breakpoint: a plain
                // SIGTRAP, and a word on why it is there.
                let pc = machine.parkedRegisters(vcpu).map { "0x" + String($0.linearPC, radix: 16) } ?? "?"
                tellGDB("gdbvmm: vCPU \(vcpu) ran into the breakpoint at 0x\(String(breakpoint, radix: 16)) at \(pc): "
                    + "the same code, running at another address before the page tables map it at gdb's (identity-mapped "
                    + "early code). gdb does not know that address, so it reports SIGTRAP; continue and stepi go on from here.\n")
                stoppedOnAliasedInt3.insert(vcpu)
                return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: .none)
            }
            return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: .softwareBreakpoint)
        case .hardwareBreakpoint(let slot):
            // A software breakpoint that a debug register carries is still gdb's `break`.
            let reason: StopReason = machine.slotCarriesSoftwareBreakpoint(slot) ? .softwareBreakpoint : .hardwareBreakpoint
            return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: reason)
        case .stepped, .guestDebugTrap, .halted, .untrappedStepNeeded:
            return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: .none)
        case .watchpoint(let kind, let address):
            switch kind {
            case .write: return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: .watch(address: address))
            case .read: return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: .readWatch(address: address))
            case .access: return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: .accessWatch(address: address))
            }
        case .interrupted: return .stopped(thread: thread, signal: GDBSignal.sigint, reason: .none)
        case .exit(let status): return .exited(status: UInt8(truncatingIfNeeded: status))
        case .crash(let crash):
            reportCrash(crash, vcpu: vcpu)
            return .stopped(thread: thread, signal: signal(for: crash), reason: .none)
        }
    }

    func signal(for crash: Crash) -> UInt8 {
        crash.kind == .emulationFailure ? GDBSignal.sigill : GDBSignal.sigsegv
    }

    func finishAttached(status: Int32) {
        guard let session else { finalStatus = status; return }
        deliver(.exited(status: UInt8(truncatingIfNeeded: status)))
        if !session.isExtended {
            finalStatus = status & 0xFF
        } else {
            // extended-remote keeps the server for the next `run`.
            resetMachine()
        }
    }

    /// Stops that arrive with no gdb to tell (free running, or collected while attaching).
    func absorbWhileDetached(vcpu: Int, stop: VCPUStop) {
        machine.note(stop, vcpu: vcpu)
        switch stop {
        case .exit(let status):
            finalStatus = status & 0xFF
        case .crash(let crash):
            reportCrash(crash, vcpu: vcpu)
            if session == nil && connection == nil && (listener == nil || running) { finalStatus = 4 }
        case .halted:
            if allHalted { finalStatus = 0 }
        case .interrupted:
            break
        case .untrappedStepNeeded:
            // gdb left with its watches removed; the instruction can run on the plain slots now.
            if running { try? machine.resume([vcpu: .run]) }
        case .softwareBreakpoint, .hardwareBreakpoint, .stepped, .watchpoint, .guestDebugTrap:
            // A leftover from a session that just ended: carry on if we are running freely.
            if running { try? machine.resume([vcpu: .run]) }
        }
    }
}

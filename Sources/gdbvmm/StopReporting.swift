import KVMRunLoop
import RSP

/// What the controller makes of vCPU stops: all-stop, the one stop reply gdb gets, the end of
/// the VM, and stops that arrive with no gdb to tell.
extension Controller {
    func handleStops() {
        let stops = machine.stops.drain()
        if stops.isEmpty { return }
        guard let session, session.isRunning else {
            for (vcpu, stop) in stops { absorbWhileDetached(vcpu: vcpu, stop: stop) }
            return
        }
        for (vcpu, stop) in stops { machine.note(stop, vcpu: vcpu) }
        // A halted vCPU alone is not news for gdb while others still run.
        let reportable = stops.filter { $0.stop != .halted && $0.stop != .interrupted }
        if reportable.isEmpty && !interruptRequested {
            if allHalted { finishAttached(status: 0) }
            return
        }
        // All-stop: everyone parks before gdb hears of the stop.
        machine.pauseAll()
        var all = stops + machine.stops.drain()
        for (vcpu, stop) in all.dropFirst(stops.count) { machine.note(stop, vcpu: vcpu) }
        all = all.filter { $0.stop != .interrupted && $0.stop != .halted }
        if let exit = all.first(where: { if case .exit = $0.stop { return true }; return false }),
           case .exit(let status) = exit.stop {
            finishAttached(status: status)
            return
        }
        // A crash first; otherwise, when several vCPUs stopped at once, the next one after the
        // vCPU reported last, so a busy breakpoint cannot starve the others (the ones not
        // reported re-execute their int3 and stop again).
        let count = machine.vcpuCount
        let chosen = all.first(where: { if case .crash = $0.stop { return true }; return false })
            ?? all.min(by: { ($0.vcpu - currentVCPU - 1 + count) % count < ($1.vcpu - currentVCPU - 1 + count) % count })
        interruptRequested = false
        guard let (vcpu, stop) = chosen else {
            if allHalted { finishAttached(status: 0); return }
            deliver(.stopped(thread: currentVCPU + 1, signal: GDBSignal.sigint, reason: .none))
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
        case .softwareBreakpoint: return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: .softwareBreakpoint)
        case .hardwareBreakpoint: return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: .hardwareBreakpoint)
        case .stepped, .guestDebugTrap, .halted: return .stopped(thread: thread, signal: GDBSignal.sigtrap, reason: .none)
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
            registerCache.removeAll()
            try? machine.reset()
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
        case .softwareBreakpoint, .hardwareBreakpoint, .stepped, .watchpoint, .guestDebugTrap:
            // A leftover from a session that just ended: carry on if we are running freely.
            if running { try? machine.resume([vcpu: .run]) }
        }
    }
}

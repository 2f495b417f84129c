import KVMRunLoop
import RSP

/// The KVM-backed debuggee that the RSP session drives. gdb thread n is vCPU n - 1.
extension Controller: Target {
    var threads: [ThreadID] { Array(1...machine.vcpuCount) }

    private func vcpuIndex(_ thread: ThreadID) throws(TargetError) -> Int {
        guard thread >= 1, thread <= machine.vcpuCount else { throw .errno(3) }  // ESRCH
        return thread - 1
    }

    func threadName(_ thread: ThreadID) -> String { "vCPU \(thread - 1)" }

    func threadExtraInfo(_ thread: ThreadID) -> String {
        guard thread >= 1, thread <= machine.vcpuCount else { return "" }
        return qemuThreadExtraInfo(thread - 1)
    }

    func readRegisters(thread: ThreadID) throws(TargetError) -> X86_64Registers {
        try readRegisters(thread: thread, parts: .all)
    }

    func readRegisters(thread: ThreadID, parts: RegisterParts) throws(TargetError) -> X86_64Registers {
        let index = try vcpuIndex(thread)
        // gdb reads the registers of the thread it selected: monitor commands and breakpoint
        // translation follow that choice.
        currentVCPU = index
        do {
            return try cachedRegisters(index, parts: parts).view
        } catch {
            throw .message("\(error)")
        }
    }

    /// The guest CPU's register sets, from vCPU 0's CPUID (every vCPU has the same features);
    /// the baseline when it cannot be read.
    var registerSources: RegisterSources {
        if let registerSourcesRead { return registerSourcesRead }
        let support = try? machine.withVCPU(0) { (vcpu) throws(SystemError) in
            GuestRegisterSupport(cpuid: try vcpu.getCPUID(), xsaveImageSize: vcpu.xsaveImageSize)
        }
        let sources = RegisterSources(support ?? .baseline)
        registerSourcesRead = sources
        return sources
    }

    /// From the registers the vCPU parked with: no ioctl, no handoff to its thread (the whole
    /// file, with x87/SSE state and MSRs, is read only when gdb asks for it).
    func stopRegisters(thread: ThreadID) throws(TargetError) -> X86_64Registers {
        let index = try vcpuIndex(thread)
        if let cached = registerCache[index], cached.state.parts.contains(.general) { return cached.view }
        guard let parked = machine.parkedRegisters(index) else { return try readRegisters(thread: thread) }
        return CPUState.generalRegisters(regs: parked.regs, sregs: parked.sregs)
    }

    func writeRegisters(_ registers: X86_64Registers, thread: ThreadID) throws(TargetError) {
        let index = try vcpuIndex(thread)
        // `registers` came from a read of this stop's state: write back the parts read.
        guard let cached = registerCache[index] else { throw .message("registers written before they were read") }
        do {
            let old = cached.state
            var new = old
            new.update(from: registers)
            registerCache[index] = nil
            try machine.withVCPU(index) { (vcpu) throws(SystemError) in try new.write(to: vcpu, old: old) }
            registerCache[index] = CachedRegisters(state: new, view: new.registers)
        } catch {
            throw .message("\(error)")
        }
    }

    func readMemory(address: UInt64, count: Int, thread: ThreadID) throws(TargetError) -> [UInt8] {
        let index = try vcpuIndex(thread)
        let bytes: [UInt8]
        do {
            bytes = try machine.readMemory(address, count: count, vcpu: index)
        } catch {
            throw .message("\(error)")
        }
        if bytes.isEmpty && count > 0 { throw .errno(14) }  // EFAULT: nothing mapped there
        return bytes
    }

    /// Straight from the guest RAM mapping into the reply's buffer (one copy per physically
    /// contiguous run); `qSearch` and `qCRC` read through this too.
    func readMemory(address: UInt64, into buffer: UnsafeMutableRawBufferPointer, thread: ThreadID) throws(TargetError) -> Int {
        let index = try vcpuIndex(thread)
        do {
            return try machine.readMemory(address, into: buffer, vcpu: index)
        } catch {
            throw .message("\(error)")
        }
    }

    /// The `m`/`x` replies: encoded from the guest RAM mapping itself, no copy in between.
    func readMemory(address: UInt64, count: Int, thread: ThreadID,
                    pieces body: (UnsafeRawBufferPointer) -> Void) throws(TargetError) -> Int {
        let index = try vcpuIndex(thread)
        do {
            return try machine.readMemory(address, count: count, vcpu: index, pieces: body)
        } catch {
            throw .message("\(error)")
        }
    }

    func writeMemory(_ bytes: [UInt8], address: UInt64, thread: ThreadID) throws(TargetError) {
        let index = try vcpuIndex(thread)
        do {
            guard try machine.writeMemory(bytes, at: address, vcpu: index) else { throw TargetError.errno(14) }
        } catch let error as TargetError {
            throw error
        } catch {
            throw .message("\(error)")
        }
    }

    func insertBreakpoint(_ kind: BreakpointKind, address: UInt64, length: Int) throws(TargetError) {
        do {
            switch kind {
            case .software: try machine.insertSoftwareBreakpoint(at: address, vcpu: currentVCPU)
            case .hardware: try machine.insertHardwareBreakpoint(at: address)
            case .writeWatch: try machine.insertWatchpoint(.write, at: address, length: length, vcpu: currentVCPU)
            case .readWatch: try machine.insertWatchpoint(.read, at: address, length: length, vcpu: currentVCPU)
            case .accessWatch: try machine.insertWatchpoint(.access, at: address, length: length, vcpu: currentVCPU)
            }
            // A plain Z0/Z1 replaces whatever conditions the breakpoint had.
            if kind == .software || kind == .hardware { machine.setBreakpointAgent(nil, at: address, vcpu: currentVCPU) }
        } catch Machine.BreakpointError.unmapped {
            throw .errno(14)
        } catch Machine.BreakpointError.noFreeSlot {
            throw .errno(28)  // ENOSPC: all four debug registers are in use
        } catch {
            throw .message("\(error)")
        }
    }

    func removeBreakpoint(_ kind: BreakpointKind, address: UInt64, length: Int) throws(TargetError) {
        do {
            switch kind {
            case .software: machine.removeSoftwareBreakpoint(at: address)
            case .hardware: machine.removeHardwareBreakpoint(at: address)
            case .writeWatch: try machine.removeWatchpoint(.write, at: address, length: length)
            case .readWatch: try machine.removeWatchpoint(.read, at: address, length: length)
            case .accessWatch: try machine.removeWatchpoint(.access, at: address, length: length)
            }
            if kind == .software || kind == .hardware { machine.setBreakpointAgent(nil, at: address, vcpu: currentVCPU) }
        } catch {
            throw .message("\(error)")
        }
    }

    func resume(_ plan: ResumePlan) throws(TargetError) {
        var modes: [Int: RunMode] = [:]
        for (thread, action) in plan.actions {
            let index = try vcpuIndex(thread)
            switch action {
            case .continue: modes[index] = .run
            // QEMU's `Qqemu.sstep` without ENABLE: a step runs the guest on.
            case .step: modes[index] = stepFlags & QEMUStepFlags.enable != 0 ? .step : .run
            case .rangeStep(let start, let end):
                modes[index] = stepFlags & QEMUStepFlags.enable != 0 ? .rangeStep(start: start, end: end) : .run
            case .stop: break
            }
        }
        try resumeForGDB(modes)
    }

    func interrupt() { requestInterrupt() }

    func monitor(_ command: String) -> String { runMonitorCommand(command) }

    /// The state read since the stop, with at least `parts` read.
    private func cachedRegisters(_ index: Int, parts: RegisterParts) throws(SystemError) -> CachedRegisters {
        if let cached = registerCache[index], cached.state.parts.isSuperset(of: parts) { return cached }
        let sources = registerSources
        let previous = registerCache[index]?.state
        let state = try machine.withVCPU(index) { (vcpu) throws(SystemError) in
            guard var state = previous else { return try CPUState(vcpu: vcpu, parts: parts, sources: sources) }
            try state.load(parts, from: vcpu)
            return state
        }
        let cached = CachedRegisters(state: state, view: state.registers)
        registerCache[index] = cached
        return cached
    }

    func restart() throws(TargetError) -> StopEvent {
        if let error = resetMachine() { throw .message("\(error)") }
        currentVCPU = 0
        return .stopped(thread: 1, signal: GDBSignal.sigtrap, reason: .none)
    }
}

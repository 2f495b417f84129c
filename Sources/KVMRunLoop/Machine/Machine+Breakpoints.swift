/// Software and hardware breakpoints and watchpoints, as gdb plants and removes them.
extension Machine {
    public enum BreakpointError: Error, Sendable, Equatable { case unmapped, noFreeSlot }

    /// Plants 0xCC at the byte `address` maps to. Where nothing is mapped yet (a kernel's text
    /// before its own page tables exist: `break start_kernel` before boot), the ELF image's
    /// segments say where it will be (p_vaddr -> p_paddr) and the 0xCC goes there, for any
    /// number of breakpoints. A bzImage's kernel is not in RAM before its decompressor writes it
    /// out: breakpoints on it wait for the decompressor's jump to it (`kernelEntered`), any
    /// number of them. Where the image does not say either, a free debug register carries the
    /// breakpoint: it matches the linear address whatever the page tables say when the guest
    /// gets there, and gdb still sees a software breakpoint.
    public func insertSoftwareBreakpoint(at address: UInt64, vcpu index: Int) throws -> Void {
        if softwareBreakpointSlots.values.contains(address) { return }
        // Before paging is on (a PVH entry) every address "maps" to itself, RAM or not.
        let mapped = try translate(address, vcpu: index).flatMap { $0 < ram.size ? $0 : nil }
        let physical = mapped ?? (physicalAddressing ? nil : guest.imagePhysical(forVirtual: address))
        if mapped == nil, physical != nil, imageCodeIsGone(address, vcpu: index) {
            // The kernel's tables no longer map that code (freed init code): nothing can run
            // there, and its page may hold anything now. gdb's breakpoint stays, unplanted.
            dormantBreakpoints.insert(address)
            return
        }
        guard let physical, physical < ram.size else {
            if awaitKernel(address, vcpu: index) { return }
            guard let slot = hardwareBreakpoints.firstIndex(where: { $0 == nil }) else { throw BreakpointError.unmapped }
            hardwareBreakpoints[slot] = address
            softwareBreakpointSlots[slot] = address
            return
        }
        if breakpoints.physical(forVirtual: address) != nil { return }
        let original = try ram.read(at: physical, count: 1)[0]
        if breakpoints.insert(virtual: address, physical: physical, original: original) {
            try ram.write([0xCC], at: physical)
        }
        if mapped == nil { breakpointsSetBeforeMapping.insert(address) }
        if breakpointsSetBeforeMapping.contains(address) {
            if mapped != nil { seenMapped.insert(address) }
            guardBreakpoint(at: address, physical: physical)
        }
    }

    /// Code the guest has not mapped yet is code it may still write (a kernel patching its
    /// alternatives, a loader copying it in): the page is guarded, so the 0xCC survives while
    /// that code is there (BreakpointTable.CodeGuard).
    func guardBreakpoint(at address: UInt64, physical: UInt64?) {
        if let physical {
            guardedBreakpoints[address] = physical
            let codeGuard = BreakpointTable.CodeGuard(virtual: address, reference: guest.imageReference(for: address) ?? address,
                                                      seenMapped: seenMapped.contains(address))
            breakpoints.setGuard(codeGuard, atPhysical: physical)
        } else {
            guardedBreakpoints[address] = nil
        }
        watches.setGuardedPages(Set(guardedBreakpoints.values.map { $0 >> 12 }))
    }

    /// A breakpoint set before its code was mapped, on code the guest has since unmapped: it
    /// was mapped once, its guard retired it, or the kernel's tables map the image's first code
    /// but not this.
    private func imageCodeIsGone(_ address: UInt64, vcpu index: Int) -> Bool {
        guard breakpointsSetBeforeMapping.contains(address) else { return false }
        if seenMapped.contains(address) || breakpoints.isRetired(virtual: address) { return true }
        guard let reference = guest.imageReference(for: address), reference >> 12 != address >> 12 else { return false }
        return (try? translate(reference, vcpu: index)).flatMap { $0 }.map { $0 < ram.size } ?? false
    }

    public func removeSoftwareBreakpoint(at address: UInt64) {
        if dormantBreakpoints.remove(address) != nil { return }
        if let i = awaitingKernel.firstIndex(of: address) {
            awaitingKernel.remove(at: i)
            if awaitingKernel.isEmpty { releaseKernelEntrySlot() }
            return
        }
        if let slot = softwareBreakpointSlots.first(where: { $0.value == address })?.key {
            softwareBreakpointSlots[slot] = nil
            hardwareBreakpoints[slot] = nil
            return
        }
        if let (physical, original) = breakpoints.remove(virtual: address) {
            try? ram.write([original], at: physical)
        }
        if guardedBreakpoints[address] != nil { guardBreakpoint(at: address, physical: nil) }
    }

    // MARK: a bzImage's kernel, before its decompressor has written it out

    /// Keeps a breakpoint on a bzImage kernel's link address until the decompressor jumps to
    /// the kernel; false where that does not apply (another image, the kernel already written
    /// out, an address outside it) or no debug register is free to watch for the jump.
    private func awaitKernel(_ address: UInt64, vcpu index: Int) -> Bool {
        guard let kernel = guest.decompressedKernel, !physicalAddressing, !guest.imageMap.contains(kernel.mapping),
              address &- kernel.mapping.virtual < kernel.mapping.size else { return false }
        if kernelEntrySlot == nil {
            guard let slot = hardwareBreakpoints.firstIndex(where: { $0 == nil }) ?? slotFreedByPlanting(vcpu: index)
            else { return false }
            hardwareBreakpoints[slot] = kernel.entry
            kernelEntrySlot = slot
        }
        if !awaitingKernel.contains(address) { awaitingKernel.append(address) }
        return true
    }

    /// Debug-register `slot` watches for the decompressor's jump to a bzImage's kernel.
    public func watchesForKernelEntry(slot: Int) -> Bool { slot == kernelEntrySlot }

    private func releaseKernelEntrySlot() {
        guard let slot = kernelEntrySlot else { return }
        hardwareBreakpoints[slot] = nil
        kernelEntrySlot = nil
    }

    /// How a stop on the debug register that watches for a bzImage's kernel ended.
    public enum KernelEntry: Sendable, Equatable {
        /// Not that debug register: the stop is gdb's.
        case notKernelEntry
        /// The decompressor jumped to the kernel: this many breakpoints are planted on it now.
        case planted(Int)
        /// Something ran at that address that is not the jump to a kernel at its link address
        /// (KASLR placed it elsewhere): the breakpoints that waited cannot hit.
        case elsewhere(Int)
    }

    /// vCPU `index` stopped on debug-register `slot`. If that is the decompressor's jump to the
    /// kernel (ring 0, at the output address, boot_params in RSI, as head_64.S jumps), the
    /// kernel's link addresses now lie where the image map says and the waiting breakpoints are
    /// planted there, guarded against the kernel patching its text. Either way the stop is
    /// gdbvmm's own: the vCPU runs on as gdb asked. Every vCPU must be parked.
    public func kernelEntered(slot: Int, vcpu index: Int) -> KernelEntry {
        guard slot == kernelEntrySlot, let kernel = guest.decompressedKernel else { return .notKernelEntry }
        releaseKernelEntrySlot()
        let waiting = awaitingKernel
        awaitingKernel = []
        guard let r = parkedRegisters(index), r.sregs.cs.selector & 3 == 0, r.linearPC == kernel.entry,
              r.regs.rsi == kernel.bootParams else { return .elsewhere(waiting.count) }
        guest.imageMap.append(kernel.mapping)
        for address in waiting { try? insertSoftwareBreakpoint(at: address, vcpu: index) }
        return .planted(waiting.count)
    }

    /// gdb's breakpoint whose int3 vCPU `index` is stopped on, when it got there through another
    /// linear address than gdb's: code that first runs identity-mapped (a kernel's startup_64
    /// before its own page tables map it at its link address, the boot stub of a higher-half
    /// kernel) executes the byte the breakpoint was planted in. gdb matches stops against its
    /// breakpoints by address: told `swbreak` it would take this one for a breakpoint it had just
    /// removed and resume into it again, forever. nil for gdb's own address, and with `monitor
    /// phys on` (then gdb's addresses are physical ones).
    public func aliasedBreakpoint(vcpu index: Int) -> UInt64? {
        guard !physicalAddressing, let r = parkedRegisters(index) else { return nil }
        let pc = r.linearPC
        if breakpoints.physical(forVirtual: pc) != nil || softwareBreakpointSlots.values.contains(pc) { return nil }
        guard let t = PageWalker.translate(pc, paging: r.paging, memory: ram) else { return nil }
        return breakpoints.virtualAddresses(atPhysical: t.physical).min()
    }

    /// The debug-register slot carries a software breakpoint gdb set at an unmapped address:
    /// its hits are reported as software breakpoints.
    public func slotCarriesSoftwareBreakpoint(_ slot: Int) -> Bool { softwareBreakpointSlots[slot] != nil }

    public func insertHardwareBreakpoint(at address: UInt64) throws(BreakpointError) {
        if let slot = hardwareBreakpoints.firstIndex(of: address), softwareBreakpointSlots[slot] == nil,
           slot != kernelEntrySlot { return }
        // gdb's hardware breakpoints come first: a software one a debug register carries for
        // speed goes back to an int3.
        guard let slot = hardwareBreakpoints.firstIndex(where: { $0 == nil }) ?? slotFreedByPlanting(vcpu: 0) else {
            throw .noFreeSlot
        }
        hardwareBreakpoints[slot] = address
    }

    public func removeHardwareBreakpoint(at address: UInt64) {
        if let slot = hardwareBreakpoints.indices.first(where: {
            hardwareBreakpoints[$0] == address && softwareBreakpointSlots[$0] == nil && $0 != kernelEntrySlot
        }) {
            hardwareBreakpoints[slot] = nil
        }
    }

    /// Removes every breakpoint and watchpoint: on detach and when gdb goes away.
    public func removeAllBreakpoints() throws(SystemError) {
        for (virtual, _) in breakpoints.all { removeSoftwareBreakpoint(at: virtual) }
        hardwareBreakpoints = [nil, nil, nil, nil]
        softwareBreakpointSlots.removeAll()
        breakpoints.removeAllAgents()
        guardedBreakpoints.removeAll()
        breakpointsSetBeforeMapping.removeAll()
        awaitingKernel.removeAll()
        kernelEntrySlot = nil
        dormantBreakpoints.removeAll()
        seenMapped.removeAll()
        breakpoints.clearRetired()
        watches.setGuardedPages([])
        try watches.removeAll()
    }

    // MARK: agents, and the debug registers that carry software breakpoints

    /// Lets the vCPUs decide the hits of gdb's breakpoint at `address` (a condition, dprintf
    /// commands); nil makes it a plain breakpoint again. Called after every software or hardware
    /// breakpoint gdb inserts or removes, so that free debug registers carry software
    /// breakpoints (BreakpointAgent.swift: a hit there costs a #DB exit, not an emulation
    /// failure, and a false condition is stepped past on the vCPU's own thread).
    public func setBreakpointAgent(_ agent: (any BreakpointAgent)?, at address: UInt64, vcpu index: Int) {
        breakpoints.wakeOnOutput(stops.eventFD)
        breakpoints.setAgent(agent, atLinear: address)
        assignBreakpointSlots(vcpu: index)
    }

    /// Console text the agents printed since the last call (dprintf), for gdb.
    public func takeAgentOutput() -> [UInt8] { breakpoints.takeOutput() }

    /// Whether a debug register carries gdb's software breakpoint at `address` (for tests and
    /// `monitor` output).
    public func debugRegisterCarries(softwareBreakpointAt address: UInt64) -> Bool {
        softwareBreakpointSlots.values.contains(address)
    }

    /// For a vCPU parked at a software-breakpoint stop on an int3 (no debug register was free):
    /// whether the breakpoint's agent says run on. Decided here, on the controller's thread,
    /// because stepping past an int3 means lifting it from memory every vCPU shares.
    public func agentRunsOnAtInt3(vcpu index: Int) -> Bool {
        guard breakpoints.hasAgents, let r = parkedRegisters(index),
              let agent = breakpoints.agent(atLinear: r.linearPC) else { return false }
        var output: [UInt8] = []
        let stops = agent.decide(BreakpointFrame(regs: r.regs, sregs: r.sregs, ram: ram, breakpoints: breakpoints),
                                 output: &output)
        if !output.isEmpty { breakpoints.queueOutput(output) }
        return !stops
    }

    /// Steps vCPU `index` past the int3 it sits on, with every vCPU parked so that none can run
    /// through the lifted byte unseen; the int3 is back before anything else runs. Returns how
    /// the step ended (`.stepped`, or a stop it ran into such as a watch hit).
    public func stepPastInt3(_ index: Int) throws(SystemError) -> VCPUStop {
        precondition(allParked, "an int3 is lifted only while every vCPU is parked")
        var lifted: (physical: UInt64, original: UInt8)?
        if let r = parkedRegisters(index), let t = PageWalker.translate(r.linearPC, paging: r.paging, memory: ram),
           let original = breakpoints.original(atPhysical: t.physical) {
            try? ram.write([original], at: t.physical)
            lifted = (t.physical, original)
        }
        var plan = debugSetup()
        plan.mode = .step
        threads[index].resume(plan)
        threads[index].waitUntilParked()
        let stop = stops.take(vcpu: index) ?? .stepped
        if let lifted, breakpoints.contains(physical: lifted.physical) {
            // The stepped instruction may have written that byte itself: it is then the new original.
            if let now = try? ram.read(at: lifted.physical, count: 1).first, now != lifted.original {
                breakpoints.updateOriginal(atPhysical: lifted.physical, to: now)
            }
            try? ram.write([0xCC], at: lifted.physical)
        }
        return stop
    }

    /// Free debug registers take planted software breakpoints, those with agents first; an agent
    /// still on an int3 takes the slot of a plain one.
    func assignBreakpointSlots(vcpu index: Int) {
        // With `monitor phys on` gdb's addresses are physical, which a debug register (it
        // matches linear addresses) cannot carry.
        guard !physicalAddressing else { return }
        let agents = Set(breakpoints.agentAddresses)
        // Breakpoints set before their code was mapped stay the guarded int3s they are (an int3
        // at the image's physical address also hits while that code runs identity-mapped).
        let planted = breakpoints.all.map(\.virtual).filter { !breakpointsSetBeforeMapping.contains($0) }
            .sorted { agents.contains($0) && !agents.contains($1) }
        for virtual in planted {
            guard !hardwareBreakpoints.contains(virtual) else { continue }
            let slot: Int
            if let free = hardwareBreakpoints.firstIndex(where: { $0 == nil }) {
                slot = free
            } else if agents.contains(virtual), let plain = softwareBreakpointSlots.first(where: { !agents.contains($0.value) })?.key,
                      plantInt3(softwareBreakpointSlots[plain]!, vcpu: index) {
                softwareBreakpointSlots[plain] = nil
                hardwareBreakpoints[plain] = nil
                slot = plain
            } else {
                break
            }
            if let (physical, original) = breakpoints.remove(virtual: virtual) { try? ram.write([original], at: physical) }
            hardwareBreakpoints[slot] = virtual
            softwareBreakpointSlots[slot] = virtual
        }
    }

    /// Gives a debug register back by planting the software breakpoint it carried (a plain one
    /// first) as an int3; nil if none can be (all unmapped).
    private func slotFreedByPlanting(vcpu index: Int) -> Int? {
        let agents = Set(breakpoints.agentAddresses)
        let carried = softwareBreakpointSlots.sorted { !agents.contains($0.value) && agents.contains($1.value) }
        for (slot, address) in carried where plantInt3(address, vcpu: index) {
            softwareBreakpointSlots[slot] = nil
            hardwareBreakpoints[slot] = nil
            return slot
        }
        return nil
    }

    /// Plants 0xCC for the software breakpoint at `address`; false where nothing is mapped.
    private func plantInt3(_ address: UInt64, vcpu index: Int) -> Bool {
        guard let physical = try? translate(address, vcpu: index), physical < ram.size,
              let original = try? ram.read(at: physical, count: 1)[0] else { return false }
        if breakpoints.insert(virtual: address, physical: physical, original: original) {
            try? ram.write([0xCC], at: physical)
        }
        return true
    }

    // MARK: watchpoints

    public func insertWatchpoint(_ kind: WatchKind, at address: UInt64, length: Int, vcpu index: Int) throws {
        guard length > 0, length <= 1 << 20 else { throw BreakpointError.unmapped }
        var ranges: [(virtual: UInt64, physical: UInt64, length: Int)] = []
        var offset = 0
        while offset < length {
            let cursor = address &+ UInt64(offset)
            let chunk = min(Int(0x1000 - (cursor & 0xFFF)), length - offset)
            guard let physical = try translate(cursor, vcpu: index) else { throw BreakpointError.unmapped }
            ranges.append((cursor, physical, chunk))
            offset += chunk
        }
        try watches.insert(kind, virtual: address, length: length, pieces: ranges)
    }

    public func removeWatchpoint(_ kind: WatchKind, at address: UInt64, length: Int) throws {
        try watches.remove(kind, virtual: address, length: length)
    }
}

/// Software and hardware breakpoints and watchpoints, as gdb plants and removes them.
extension Machine {
    public enum BreakpointError: Error, Sendable, Equatable { case unmapped, noFreeSlot }

    /// Plants 0xCC at the byte `address` maps to. Where nothing is mapped yet (a kernel's text
    /// before its own page tables exist: `break start_kernel` before boot), the ELF image's
    /// segments say where it will be (p_vaddr -> p_paddr) and the 0xCC goes there, for any
    /// number of breakpoints. Where the image does not say either, a free debug register
    /// carries the breakpoint: it matches the linear address whatever the page tables say when
    /// the guest gets there, and gdb still sees a software breakpoint.
    public func insertSoftwareBreakpoint(at address: UInt64, vcpu index: Int) throws -> Void {
        // Before paging is on (a PVH entry) every address "maps" to itself, RAM or not.
        let mapped = try translate(address, vcpu: index).flatMap { $0 < ram.size ? $0 : nil }
        let physical = mapped ?? (physicalAddressing ? nil : guest.imagePhysical(forVirtual: address))
        guard let physical, physical < ram.size else {
            if softwareBreakpointSlots.values.contains(address) { return }
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
        if breakpointsSetBeforeMapping.contains(address) { guardBreakpoint(at: address, physical: physical) }
    }

    /// Code the guest has not mapped yet is code it may still write (a kernel patching its
    /// alternatives, a loader copying it in): the page is guarded, so the 0xCC survives.
    func guardBreakpoint(at address: UInt64, physical: UInt64?) {
        if let physical { guardedBreakpoints[address] = physical } else { guardedBreakpoints[address] = nil }
        watches.setGuardedPages(Set(guardedBreakpoints.values.map { $0 >> 12 }))
    }

    public func removeSoftwareBreakpoint(at address: UInt64) {
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

    /// The debug-register slot carries a software breakpoint gdb set at an unmapped address:
    /// its hits are reported as software breakpoints.
    public func slotCarriesSoftwareBreakpoint(_ slot: Int) -> Bool { softwareBreakpointSlots[slot] != nil }

    public func insertHardwareBreakpoint(at address: UInt64) throws(BreakpointError) {
        if let slot = hardwareBreakpoints.firstIndex(of: address), softwareBreakpointSlots[slot] == nil { return }
        guard let slot = hardwareBreakpoints.firstIndex(where: { $0 == nil }) else { throw .noFreeSlot }
        hardwareBreakpoints[slot] = address
    }

    public func removeHardwareBreakpoint(at address: UInt64) {
        if let slot = hardwareBreakpoints.indices.first(where: {
            hardwareBreakpoints[$0] == address && softwareBreakpointSlots[$0] == nil
        }) {
            hardwareBreakpoints[slot] = nil
        }
    }

    /// Removes every breakpoint and watchpoint: on detach and when gdb goes away.
    public func removeAllBreakpoints() throws(SystemError) {
        for (virtual, _) in breakpoints.all { removeSoftwareBreakpoint(at: virtual) }
        hardwareBreakpoints = [nil, nil, nil, nil]
        softwareBreakpointSlots.removeAll()
        guardedBreakpoints.removeAll()
        breakpointsSetBeforeMapping.removeAll()
        watches.setGuardedPages([])
        try watches.removeAll()
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

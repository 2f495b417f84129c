import Glibc

/// Guest memory as gdb sees it: through a vCPU's page tables (or physical in `phys on` mode),
/// with planted breakpoints hidden. Each request walks the page tables once per page and copies
/// each physically contiguous run in one go from the guest RAM mapping.
extension Machine {
    /// Translates through vCPU `index`'s page tables (or not, in physical mode).
    public func translate(_ address: UInt64, vcpu index: Int) throws(SystemError) -> UInt64? {
        if physicalAddressing { return address < ram.size ? address : nil }
        return PageWalker.translate(address, paging: try memoryPaging(index), memory: ram)?.physical
    }

    /// The guest-physical runs behind [address, address + count) as vCPU `index` sees them.
    public func physicalRuns(_ address: UInt64, count: Int, vcpu index: Int) throws(SystemError) -> [PhysicalRun] {
        GuestVirtualRuns.runs(address, count: count, paging: physicalAddressing ? nil : try memoryPaging(index),
                              memory: ram)
    }

    /// Fills `buffer` from guest memory at `address`; returns how many bytes it read, which is
    /// fewer than `buffer.count` when the range runs into an unmapped page (0: nothing mapped).
    /// Planted breakpoints read as the bytes they replaced.
    public func readMemory(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer,
                           vcpu index: Int) throws(SystemError) -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        let runs = try physicalRuns(address, count: buffer.count, vcpu: index)
        for run in runs {
            // Runs lie inside RAM by construction.
            try? ram.copy(at: run.physical, count: run.length, to: base + run.offset)
        }
        let planted = breakpoints.plantedPhysical
        if !planted.isEmpty {
            for (physical, original) in planted {
                for run in runs where physical >= run.physical && physical - run.physical < UInt64(run.length) {
                    buffer[run.offset + Int(physical - run.physical)] = original
                }
            }
        }
        return GuestVirtualRuns.covered(runs)
    }

    /// Hands [address, address + count) to `body` in order, in pieces that point straight into
    /// the guest RAM mapping (valid only during the call; the vCPUs are parked), a planted
    /// breakpoint's original byte as a one-byte piece of its own. Returns how many bytes it
    /// handed over: fewer than `count` at an unmapped page.
    public func readMemory(_ address: UInt64, count: Int, vcpu index: Int,
                           pieces body: (UnsafeRawBufferPointer) -> Void) throws(SystemError) -> Int {
        let runs = try physicalRuns(address, count: count, vcpu: index)
        let planted = breakpoints.plantedPhysical
        for run in runs {
            var next = run.physical
            let end = run.physical + UInt64(run.length)
            if !planted.isEmpty {
                for (physical, original) in planted.filter({ $0.key >= run.physical && $0.key < end }).sorted(by: { $0.key < $1.key }) {
                    body(ramBytes(next, Int(physical - next)))
                    withUnsafeBytes(of: original) { body($0) }
                    next = physical + 1
                }
            }
            body(ramBytes(next, Int(end - next)))
        }
        return GuestVirtualRuns.covered(runs)
    }

    /// Guest RAM itself at [physical, physical + count), which the runs keep inside RAM.
    private func ramBytes(_ physical: UInt64, _ count: Int) -> UnsafeRawBufferPointer {
        // SAFETY: physical + count <= ram.size (the runs lie inside RAM); the mapping lives as
        // long as the machine.
        UnsafeRawBufferPointer(start: ram.base + Int(physical), count: count)
    }

    /// Reads guest memory; stops early at the first unmapped page. Planted breakpoints read as
    /// the bytes they replaced.
    public func readMemory(_ address: UInt64, count: Int, vcpu index: Int) throws(SystemError) -> [UInt8] {
        guard count > 0 else { return [] }
        var failure: SystemError?
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            do throws(SystemError) {
                initialized = try readMemory(address, into: UnsafeMutableRawBufferPointer(buffer), vcpu: index)
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Writes guest memory; a write over a planted breakpoint changes the byte under it and
    /// keeps the breakpoint. Returns false (having written nothing) if part is unmapped.
    public func writeMemory(_ bytes: [UInt8], at address: UInt64, vcpu index: Int) throws(SystemError) -> Bool {
        let runs = try physicalRuns(address, count: bytes.count, vcpu: index)
        guard GuestVirtualRuns.covered(runs) == bytes.count else { return false }
        bytes.withUnsafeBytes { source in
            for run in runs {
                // SAFETY: run.offset + run.length <= bytes.count (the runs cover exactly the bytes).
                try? ram.copy(from: source.baseAddress! + run.offset, count: run.length, to: run.physical)
            }
        }
        let planted = breakpoints.plantedPhysical
        for (physical, _) in planted {
            for run in runs where physical >= run.physical && physical - run.physical < UInt64(run.length) {
                breakpoints.updateOriginal(atPhysical: physical, to: bytes[run.offset + Int(physical - run.physical)])
                try? ram.write([0xCC], at: physical)
            }
        }
        return true
    }

    /// The paging registers of a parked vCPU, for translating gdb's addresses.
    private func memoryPaging(_ index: Int) throws(SystemError) -> PagingState {
        guard let paging = parkedRegisters(index)?.paging else {
            throw SystemError("translating through vCPU \(index)'s page tables (the vCPU is running)", errno: EBUSY)
        }
        return paging
    }
}

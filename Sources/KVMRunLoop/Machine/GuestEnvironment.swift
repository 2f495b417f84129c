import CKVM

/// The Machine's devices, breakpoints and watch traps as the exit handler sees them. Each part
/// guards its own state, so every vCPU thread uses it without a global lock.
final class GuestEnvironment: ExitEnvironment {
    let bus: PortBus
    let ram: GuestRAM
    let breakpoints: BreakpointTable
    let watches: WatchTraps

    init(bus: PortBus, ram: GuestRAM, breakpoints: BreakpointTable, watches: WatchTraps) {
        self.bus = bus
        self.ram = ram
        self.breakpoints = breakpoints
        self.watches = watches
    }

    func portIO(_ access: IOAccess) -> PortIOResult {
        let size = min(max(access.size, 1), 4)
        let count = max(access.count, 1)
        if access.isOut {
            for i in 0..<count {
                var value: UInt32 = 0
                for b in 0..<size where i * access.size + b < access.data.count {
                    value |= UInt32(access.data[i * access.size + b]) << (8 * UInt32(b))
                }
                let effect = bus.write(port: access.port, size: access.size, value: value)
                if effect != .none { return PortIOResult(effect: effect) }
            }
            return PortIOResult()
        }
        var input = [UInt8](repeating: 0, count: access.size * count)
        for i in 0..<count {
            let value = bus.read(port: access.port, size: access.size)
            for b in 0..<min(size, access.size) { input[i * access.size + b] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(b))) }
        }
        return PortIOResult(input: input)
    }

    func mmio(_ access: MMIOAccess, paging: () -> PagingState?) -> MMIOResult {
        watches.serve(access, planted: breakpoints, paging: paging)
    }

    func breakpointOwner(atLinear address: UInt64, paging: PagingState) -> BreakpointOwner {
        guard let t = PageWalker.translate(address, paging: paging, memory: ram) else { return .none }
        if breakpoints.contains(physical: t.physical) { return .debugger }
        guard let byte = try? ram.read(at: t.physical, count: 1).first else { return .none }
        return byte == 0xCC ? .guest : .none
    }

    func instructionBytes(atLinear address: UInt64, paging: PagingState) -> [UInt8] {
        var bytes: [UInt8] = []
        for i in 0..<15 {
            guard let t = PageWalker.translate(address &+ UInt64(i), paging: paging, memory: ram),
                  let b = try? ram.read(at: t.physical, count: 1).first else { break }
            bytes.append(breakpoints.original(atPhysical: t.physical) ?? b)
        }
        return bytes
    }

    /// Page by page: one translation per page, one copy per page.
    func codeBytes(atLinear address: UInt64, count: Int, paging: PagingState) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        var planted: [UInt64: UInt8]?
        while bytes.count < count {
            let linear = address &+ UInt64(bytes.count)
            let chunk = min(count - bytes.count, Int(0x1000 - (linear & 0xFFF)))
            guard let t = PageWalker.translate(linear, paging: paging, memory: ram),
                  var page = try? ram.read(at: t.physical, count: chunk) else { break }
            if planted == nil { planted = breakpoints.plantedPhysical }
            for (physical, original) in planted! where physical >= t.physical && physical < t.physical + UInt64(page.count) {
                page[Int(physical - t.physical)] = original
            }
            bytes += page
        }
        return bytes
    }

    var hasWatches: Bool { !watches.isEmpty }

    func watchStepSnapshot(regs: kvm_regs, sregs: kvm_sregs, allWatches: Bool) -> WatchStepSnapshot {
        WatchFallback.snapshot(regs: regs, sregs: sregs, watches: watches, ram: ram, breakpoints: breakpoints,
                               allWatches: allWatches)
    }

    func watchStepHit(_ snapshot: WatchStepSnapshot, regs: kvm_regs) -> VCPUStop? {
        WatchFallback.hit(snapshot, regsAfter: regs, watches: watches, ram: ram, breakpoints: breakpoints)
    }
}

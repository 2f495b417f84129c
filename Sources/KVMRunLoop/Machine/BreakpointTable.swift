import Foundation
import Glibc

/// Software breakpoints: the original byte under every 0xCC we planted, keyed by guest-physical
/// address (what the vCPU threads look up on a hit), plus the guest-virtual address gdb used.
final class BreakpointTable: @unchecked Sendable {
    // SAFETY (Sendable): all state is guarded by `lock`; vCPU threads only look up.
    private let lock = NSLock()
    private var originals: [UInt64: UInt8] = [:]
    private var physicalOf: [UInt64: UInt64] = [:]
    private var guards: [UInt64: CodeGuard] = [:]
    private var retired: Set<UInt64> = []

    func contains(physical: UInt64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return originals[physical] != nil
    }

    func physical(forVirtual address: UInt64) -> UInt64? {
        lock.lock()
        defer { lock.unlock() }
        return physicalOf[address]
    }

    /// The addresses gdb set the breakpoints planted at this physical byte at.
    func virtualAddresses(atPhysical address: UInt64) -> [UInt64] {
        lock.lock()
        defer { lock.unlock() }
        return physicalOf.compactMap { $0.value == address ? $0.key : nil }
    }

    func original(atPhysical address: UInt64) -> UInt8? {
        lock.lock()
        defer { lock.unlock() }
        return originals[address]
    }

    /// Records a planted breakpoint; false when one is already planted at that physical byte.
    func insert(virtual: UInt64, physical: UInt64, original: UInt8) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        physicalOf[virtual] = physical
        if originals[physical] != nil { return false }
        originals[physical] = original
        return true
    }

    /// Forgets the breakpoint gdb set at `virtual`; returns the physical byte to restore and its
    /// original value when no other virtual alias still uses it.
    func remove(virtual: UInt64) -> (physical: UInt64, original: UInt8)? {
        lock.lock()
        defer { lock.unlock() }
        guard let physical = physicalOf.removeValue(forKey: virtual) else { return nil }
        if physicalOf.values.contains(physical) { return nil }
        guards[physical] = nil
        guard let original = originals.removeValue(forKey: physical) else { return nil }
        return (physical, original)
    }

    // MARK: breakpoints planted before their code was mapped

    /// A breakpoint planted where the image said its code would be, before the guest's own page
    /// tables mapped it. Its page is guarded (WatchTraps), and a guest write over its byte keeps
    /// the 0xCC only while the code is still there: a kernel patching its text (the tables map
    /// `virtual` to this byte) or a loader writing it before those tables exist. Once the
    /// kernel's tables map the image (`reference`, its first code in the same 512 GiB) but no
    /// longer this code here, or after they mapped it here once, the page is something else
    /// now (freed init code reused): the breakpoint retires and the guest's byte goes in.
    struct CodeGuard: Sendable, Equatable {
        var virtual: UInt64
        var reference: UInt64
        var seenMapped: Bool
    }

    func setGuard(_ codeGuard: CodeGuard?, atPhysical address: UInt64) {
        lock.lock()
        guards[address] = codeGuard
        lock.unlock()
    }

    func codeGuard(atPhysical address: UInt64) -> CodeGuard? {
        lock.lock()
        defer { lock.unlock() }
        return guards[address]
    }

    func markSeenMapped(atPhysical address: UInt64) {
        lock.lock()
        guards[address]?.seenMapped = true
        lock.unlock()
    }

    /// Forgets the guarded breakpoint at `address` (its code is gone; the caller writes the
    /// guest's byte); gdb's address stays listed in `isRetired` until `clearRetired`.
    func retire(atPhysical address: UInt64) {
        lock.lock()
        if let g = guards.removeValue(forKey: address) { retired.insert(g.virtual) }
        originals[address] = nil
        for (virtual, physical) in physicalOf where physical == address { physicalOf[virtual] = nil }
        lock.unlock()
    }

    func isRetired(virtual: UInt64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return retired.contains(virtual)
    }

    func clearRetired() {
        lock.lock()
        retired.removeAll()
        lock.unlock()
    }

    /// A guest or gdb write over a planted byte changes what is "under" the breakpoint.
    func updateOriginal(atPhysical address: UInt64, to value: UInt8) {
        lock.lock()
        if originals[address] != nil { originals[address] = value }
        lock.unlock()
    }

    var all: [(virtual: UInt64, physical: UInt64)] {
        lock.lock()
        defer { lock.unlock() }
        return physicalOf.map { ($0.key, $0.value) }
    }

    // MARK: agents (conditions and dprintf), by the linear address gdb set the breakpoint at

    private var agents: [UInt64: any BreakpointAgent] = [:]
    /// Console text agents printed, for the controller to send to gdb.
    private var output: [UInt8] = []
    /// Signalled when output is queued (the stop queue's eventfd wakes the controller).
    private var outputEventFD: Int32 = -1

    func setAgent(_ agent: (any BreakpointAgent)?, atLinear address: UInt64) {
        lock.lock()
        agents[address] = agent
        lock.unlock()
    }

    func agent(atLinear address: UInt64) -> (any BreakpointAgent)? {
        lock.lock()
        defer { lock.unlock() }
        return agents.isEmpty ? nil : agents[address]
    }

    var hasAgents: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !agents.isEmpty
    }

    var agentAddresses: [UInt64] {
        lock.lock()
        defer { lock.unlock() }
        return Array(agents.keys)
    }

    func removeAllAgents() {
        lock.lock()
        agents.removeAll()
        lock.unlock()
    }

    func wakeOnOutput(_ eventFD: Int32) {
        lock.lock()
        outputEventFD = eventFD
        lock.unlock()
    }

    /// At most this much unsent console text is kept; beyond it a dprintf's text is dropped.
    static let outputLimit = 1 << 20

    func queueOutput(_ text: [UInt8]) {
        lock.lock()
        if output.count + text.count <= Self.outputLimit { output += text }
        let fd = outputEventFD
        lock.unlock()
        if fd >= 0 {
            var one: UInt64 = 1
            _ = write(fd, &one, 8)
        }
    }

    func takeOutput() -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        let taken = output
        output.removeAll(keepingCapacity: true)
        return taken
    }

    var plantedPhysical: [UInt64: UInt8] {
        lock.lock()
        defer { lock.unlock() }
        return originals
    }
}

import CKVM
import Foundation

/// Watchpoints without debug registers (they never fire on some hosts, see PLATFORM.md): the
/// pages holding watched bytes leave the normal memory slots, so the guest's accesses to them
/// exit to us as MMIO. Pages with only write watches become read-only slots (reads and
/// instruction fetches run natively); pages with read or access watches get no slot at all.
/// We complete each access on guest RAM ourselves and report a hit when it overlaps a watch.
final class WatchTraps: @unchecked Sendable {
    // SAFETY (Sendable): `watches`, `layout` and `suspended` are guarded by `lock`; slot
    // changes happen only while every vCPU is parked (controller rule).
    struct Piece: Sendable { var virtual: UInt64; var physical: UInt64; var length: Int }
    struct Watch: Sendable { var kind: WatchKind; var virtual: UInt64; var length: Int; var pieces: [Piece] }
    enum PageMode: Equatable { case readOnly, unmapped }
    struct Slot: Equatable { var start: UInt64; var size: UInt64; var readOnly: Bool }

    private let ram: GuestRAM
    private weak var vm: VirtualMachine?
    private let lock = NSLock()
    /// Held across a whole slot rebuild: the controller and a vCPU's fallback step may both do one.
    private let slotLock = NSLock()
    private var watches: [Watch] = []
    private var installed: [Slot] = []
    /// Pages whose trap is lifted for one fallback single-step.
    private var lifted = false
    /// Watched pages the CPU also reads as page tables: they cannot leave the memory slots (the
    /// guest's own translation would fault), so their watches are checked by single-stepping.
    private var steppedPages: Set<UInt64> = []
    private var tablePages: Set<UInt64> = []

    init(ram: GuestRAM) {
        self.ram = ram
        installed = [Slot(start: 0, size: ram.size, readOnly: false)]
    }

    func attach(vm: VirtualMachine) { self.vm = vm }

    var isEmpty: Bool {
        lock.lock()
        defer { lock.unlock() }
        return watches.isEmpty
    }

    func insert(_ kind: WatchKind, virtual: UInt64, length: Int, pieces: [Piece]) throws {
        lock.lock()
        if !watches.contains(where: { $0.kind == kind && $0.virtual == virtual && $0.length == length }) {
            watches.append(Watch(kind: kind, virtual: virtual, length: length, pieces: pieces))
        }
        lock.unlock()
    }

    func insert(_ kind: WatchKind, virtual: UInt64, length: Int, pieces: [(virtual: UInt64, physical: UInt64, length: Int)]) throws {
        try insert(kind, virtual: virtual, length: length,
                   pieces: pieces.map { Piece(virtual: $0.virtual, physical: $0.physical, length: $0.length) })
    }

    func remove(_ kind: WatchKind, virtual: UInt64, length: Int) throws {
        lock.lock()
        watches.removeAll { $0.kind == kind && $0.virtual == virtual && $0.length == length }
        lock.unlock()
    }

    func removeAll() throws(SystemError) {
        lock.lock()
        watches.removeAll()
        lock.unlock()
        try apply()
    }

    func reset() throws(SystemError) { try apply() }

    /// Which pages need trapping, and how.
    private func pageModes() -> [UInt64: PageMode] {
        var modes: [UInt64: PageMode] = [:]
        for watch in watches {
            for piece in watch.pieces {
                let first = piece.physical >> 12
                let last = (piece.physical + UInt64(piece.length) - 1) >> 12
                for page in first...last where !tablePages.contains(page) {
                    if watch.kind == .write, modes[page] == nil { modes[page] = .readOnly } else if watch.kind != .write { modes[page] = .unmapped }
                }
            }
        }
        return modes
    }

    private func desiredLayout(_ modes: [UInt64: PageMode]) -> [Slot] {
        var slots: [Slot] = []
        var cursor: UInt64 = 0
        for page in modes.keys.sorted() {
            let start = page << 12
            guard start < ram.size else { continue }
            if start > cursor { slots.append(Slot(start: cursor, size: start - cursor, readOnly: false)) }
            if modes[page] == .readOnly {
                if let last = slots.last, last.readOnly, last.start + last.size == start {
                    slots[slots.count - 1].size += 0x1000
                } else {
                    slots.append(Slot(start: start, size: 0x1000, readOnly: true))
                }
            }
            cursor = start + 0x1000
        }
        if cursor < ram.size { slots.append(Slot(start: cursor, size: ram.size - cursor, readOnly: false)) }
        return slots
    }

    /// Brings KVM's memory slots in line with the watches; called before vCPUs resume, so that
    /// gdb's remove-all-on-stop / insert-all-on-resume habit costs no slot changes.
    /// With `tablePages` given (page numbers of the guests' page tables), also recomputes which
    /// watches must be checked by single-stepping.
    func apply(tablePages newTablePages: Set<UInt64>? = nil) throws(SystemError) {
        slotLock.lock()
        defer { slotLock.unlock() }
        lock.lock()
        if let newTablePages {
            tablePages = newTablePages
            steppedPages = Set(watches.flatMap { watch in
                watch.pieces.flatMap { piece in
                    Array((piece.physical >> 12)...((piece.physical + UInt64(piece.length) - 1) >> 12))
                }
            }).intersection(newTablePages)
        }
        let wanted = lifted ? [Slot(start: 0, size: ram.size, readOnly: false)] : desiredLayout(pageModes())
        let current = installed
        lock.unlock()
        if wanted == current { return }
        guard let vm else { return }
        for i in current.indices.reversed() {
            try vm.setMemoryRegion(slot: UInt32(i), guestPhysical: current[i].start, size: 0, host: nil)
        }
        for (i, slot) in wanted.enumerated() {
            try vm.setMemoryRegion(slot: UInt32(i), guestPhysical: slot.start, size: slot.size,
                                   host: ram.base + Int(slot.start), readOnly: slot.readOnly)
        }
        lock.lock()
        installed = wanted
        lock.unlock()
    }

    /// Temporarily maps every page normally (for a fallback single-step), or restores the traps.
    func setLifted(_ value: Bool) throws(SystemError) {
        lock.lock()
        lifted = value
        lock.unlock()
        try apply()
    }

    /// Some watch lies on a page-table page: vCPUs must single-step and check after each step.
    var needsStepping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !steppedPages.isEmpty && !watches.isEmpty
    }

    /// The bytes under write/access watches on stepped pages, before a step.
    func steppedSnapshot() -> [(Piece, WatchKind, [UInt8])] {
        lock.lock()
        let pages = steppedPages
        let list = watches
        lock.unlock()
        var result: [(Piece, WatchKind, [UInt8])] = []
        for watch in list where watch.kind != .read {
            for piece in watch.pieces where pages.contains(piece.physical >> 12) {
                result.append((piece, watch.kind, (try? ram.read(at: piece.physical, count: piece.length)) ?? []))
            }
        }
        return result
    }

    /// After a step: a changed byte under a stepped write/access watch, or a decoded read of a
    /// stepped read/access watch.
    func steppedHit(snapshot: [(Piece, WatchKind, [UInt8])], reads: [MemoryAccess]) -> (WatchKind, UInt64)? {
        for (piece, kind, old) in snapshot {
            let now = (try? ram.read(at: piece.physical, count: piece.length)) ?? []
            if let i = old.indices.first(where: { $0 < now.count && old[$0] != now[$0] }) {
                return (kind == .access ? .access : .write, piece.virtual + UInt64(i))
            }
        }
        for access in reads {
            if let hit = hitVirtual(address: access.address, length: access.size, reads: true) { return hit }
        }
        return nil
    }

    func isTrapped(physical: UInt64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !watches.isEmpty else { return false }
        return installed.allSatisfy { !($0.start <= physical && physical < $0.start + $0.size) || $0.readOnly }
            && physical < ram.size
    }

    /// Snapshot of the bytes under write/access watches, for the fallback step's comparison.
    func watchedBytes() -> [(Watch, [UInt8])] {
        lock.lock()
        let list = watches.filter { $0.kind != .read }
        lock.unlock()
        return list.map { w in (w, w.pieces.flatMap { (try? ram.read(at: $0.physical, count: $0.length)) ?? [] }) }
    }

    /// The first watch of a matching kind overlapping [physical, physical+length), with the
    /// guest-virtual address to report.
    func hit(physical: UInt64, length: Int, isWrite: Bool) -> (WatchKind, UInt64)? {
        lock.lock()
        defer { lock.unlock() }
        for watch in watches {
            let matches = watch.kind == .access || (watch.kind == .write) == isWrite
            guard matches else { continue }
            for piece in watch.pieces {
                let lo = max(piece.physical, physical)
                let hi = min(piece.physical + UInt64(piece.length), physical + UInt64(length))
                if lo < hi { return (watch.kind, piece.virtual + (lo - piece.physical)) }
            }
        }
        return nil
    }

    /// Like `hit`, for a guest-virtual range and read accesses only (the fallback step's view).
    func hitVirtual(address: UInt64, length: Int, reads: Bool) -> (WatchKind, UInt64)? {
        lock.lock()
        defer { lock.unlock() }
        for watch in watches where watch.kind == .read || watch.kind == .access {
            let lo = max(watch.virtual, address)
            let hi = min(watch.virtual &+ UInt64(watch.length), address &+ UInt64(length))
            if lo < hi { return (watch.kind, lo) }
        }
        return nil
    }

    /// Serves an MMIO exit. Accesses to trapped RAM are completed on RAM; a hit lets the
    /// instruction finish (immediate_exit re-entry) and then reports the stop. Accesses to
    /// addresses with no RAM at all read as all-ones and drop writes, like an empty bus.
    func handle(vcpu: VCPU, address: UInt64, length: Int, isWrite: Bool, data: UInt64,
                planted: BreakpointTable) throws -> VCPUStop? {
        guard length > 0, length <= 8, ram.contains(address, count: length) else {
            if !isWrite { vcpu.completeMMIORead(UInt64.max) }
            return nil
        }
        complete(vcpu: vcpu, address: address, length: length, isWrite: isWrite, data: data, planted: planted)
        guard let (kind, virtual) = hit(physical: address, length: length, isWrite: isWrite) else { return nil }
        // Finish the instruction before reporting, as gdb expects of watchpoints.
        while true {
            vcpu.requestImmediateExit()
            let exit = try vcpu.runOnce()
            guard case let .mmio(a, l, w, d) = exit else { break }
            if l > 0, l <= 8, ram.contains(a, count: l) {
                complete(vcpu: vcpu, address: a, length: l, isWrite: w, data: d, planted: planted)
            } else if !w {
                vcpu.completeMMIORead(UInt64.max)
            }
        }
        return .watchpoint(kind, address: virtual)
    }

    private func complete(vcpu: VCPU, address: UInt64, length: Int, isWrite: Bool, data: UInt64,
                          planted: BreakpointTable) {
        if isWrite {
            var bytes = (0..<length).map { UInt8(truncatingIfNeeded: data >> (8 * UInt64($0))) }
            for i in bytes.indices where planted.original(atPhysical: address + UInt64(i)) != nil {
                planted.updateOriginal(atPhysical: address + UInt64(i), to: bytes[i])
                bytes[i] = 0xCC
            }
            try? ram.write(bytes, at: address)
        } else {
            let bytes = (try? ram.read(at: address, count: length)) ?? []
            var value: UInt64 = 0
            for (i, b) in bytes.enumerated() { value |= UInt64(b) << (8 * UInt64(i)) }
            vcpu.completeMMIORead(value)
        }
    }
}

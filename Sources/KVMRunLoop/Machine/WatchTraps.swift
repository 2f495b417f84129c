import CKVM
import Foundation

/// Watchpoints without debug registers (they never fire on some hosts, see PLATFORM.md): the
/// pages holding watched bytes leave the normal memory slots, so the guest's accesses to them
/// exit to us as MMIO. Pages with only write watches become read-only slots (reads and
/// instruction fetches run natively); pages with read or access watches get no slot at all.
/// We complete each access on guest RAM ourselves and report a hit when it overlaps a watch.
final class WatchTraps: @unchecked Sendable {
    // SAFETY (Sendable): `watches`, `installed`, `lifted` and the page sets are guarded by `lock`; slot
    // changes happen only while every vCPU is parked (controller rule).
    struct Piece: Sendable { var virtual: UInt64; var physical: UInt64; var length: Int }
    struct Watch: Sendable { var kind: WatchKind; var virtual: UInt64; var length: Int; var pieces: [Piece] }
    enum PageMode: Equatable { case readOnly, unmapped }
    struct Slot: Equatable { var start: UInt64; var size: UInt64; var readOnly: Bool }

    private let ram: GuestRAM
    private weak var vm: VirtualMachine?
    private let lock = NSLock()
    /// Held across a whole slot rebuild (the controller does them, with every vCPU parked).
    private let slotLock = NSLock()
    private var watches: [Watch] = []
    private var installed: [Slot] = []
    /// Every trap lifted for one fallback single-step, while the other vCPUs are parked.
    private var lifted = false
    /// Watched pages the CPU also reads as page tables: they cannot leave the memory slots (the
    /// guest's own translation would fault), so their watches are checked by single-stepping.
    private var steppedPages: Set<UInt64> = []
    private var tablePages: Set<UInt64> = []
    /// Pages holding breakpoints planted before the guest mapped their code (Machine's
    /// `guardedBreakpoints`): read-only, so that the guest loading or patching its code there (a
    /// kernel's alternatives, a loader's copy) cannot wipe a 0xCC out; `serve` keeps it.
    private var guardedPages: Set<UInt64> = []

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

    /// Takes effect at the next `apply` (every resume applies).
    func setGuardedPages(_ pages: Set<UInt64>) {
        lock.lock()
        guardedPages = pages
        lock.unlock()
    }

    /// Which pages need trapping, and how (internal for tests; callers hold `lock`).
    func pageModes() -> [UInt64: PageMode] {
        var modes: [UInt64: PageMode] = [:]
        for page in guardedPages where !tablePages.contains(page) { modes[page] = .readOnly }
        for watch in watches {
            for piece in watch.pieces {
                let first = piece.physical >> 12
                let last = (piece.physical + UInt64(piece.length) - 1) >> 12
                for page in first...last where !tablePages.contains(page) {
                    if watch.kind != .write { modes[page] = .unmapped } else if modes[page] == nil { modes[page] = .readOnly }
                }
            }
        }
        return modes
    }

    func desiredLayout(_ modes: [UInt64: PageMode]) -> [Slot] {
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

    /// The bytes under write/access watches before a checked step: those on page-table pages
    /// (`steppedPagesOnly`, watches checked by stepping) or all of them (the traps are lifted).
    func watchedBytes(steppedPagesOnly: Bool) -> [WatchedBytes] {
        lock.lock()
        let pages = steppedPages
        let list = watches
        lock.unlock()
        var result: [WatchedBytes] = []
        for watch in list where watch.kind != .read {
            for piece in watch.pieces {
                let first = piece.physical >> 12, last = (piece.physical + UInt64(piece.length) - 1) >> 12
                if steppedPagesOnly && !(first...last).contains(where: pages.contains) { continue }
                result.append(WatchedBytes(kind: watch.kind, virtual: piece.virtual, physical: piece.physical,
                                           bytes: (try? ram.read(at: piece.physical, count: piece.length)) ?? []))
            }
        }
        return result
    }

    func isTrapped(physical: UInt64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !watches.isEmpty || !guardedPages.isEmpty else { return false }
        return installed.allSatisfy { !($0.start <= physical && physical < $0.start + $0.size) || $0.readOnly }
            && physical < ram.size
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

    /// Like `hit`, for a guest-virtual range and read accesses only (the checked step's view).
    func hitVirtual(address: UInt64, length: Int) -> (WatchKind, UInt64)? {
        lock.lock()
        defer { lock.unlock() }
        for watch in watches where watch.kind == .read || watch.kind == .access {
            let lo = max(watch.virtual, address)
            let hi = min(watch.virtual &+ UInt64(watch.length), address &+ UInt64(length))
            if lo < hi { return (watch.kind, lo) }
        }
        return nil
    }

    /// Serves an MMIO exit. Accesses to trapped RAM are completed on RAM (a write over a planted
    /// breakpoint changes the byte under it and keeps the 0xCC) and checked against the watches;
    /// addresses with no RAM at all read as all-ones and drop writes, like an empty bus.
    /// `paging` gives the accessing vCPU's paging state; it is asked only for a write over a
    /// breakpoint planted before its code was mapped (BreakpointTable.CodeGuard).
    func serve(_ access: MMIOAccess, planted: BreakpointTable, paging: () -> PagingState? = { nil }) -> MMIOResult {
        let address = access.address, length = access.length
        guard length > 0, length <= 8, ram.contains(address, count: length) else {
            return MMIOResult(value: UInt64.max)
        }
        var value: UInt64 = 0
        if access.isWrite {
            var bytes = (0..<length).map { UInt8(truncatingIfNeeded: access.data >> (8 * UInt64($0))) }
            for i in bytes.indices where planted.original(atPhysical: address + UInt64(i)) != nil {
                let physical = address + UInt64(i)
                if let codeGuard = planted.codeGuard(atPhysical: physical), let paging = paging() {
                    if codeIsGone(codeGuard, physical: physical, paging: paging) {
                        planted.retire(atPhysical: physical)
                        continue
                    }
                    if !codeGuard.seenMapped, mapped(codeGuard.virtual, paging) == physical {
                        planted.markSeenMapped(atPhysical: physical)
                    }
                }
                planted.updateOriginal(atPhysical: physical, to: bytes[i])
                bytes[i] = 0xCC
            }
            try? ram.write(bytes, at: address)
        } else {
            let bytes = (try? ram.read(at: address, count: length)) ?? []
            for (i, b) in bytes.enumerated() { value |= UInt64(b) << (8 * UInt64(i)) }
        }
        let found = hit(physical: address, length: length, isWrite: access.isWrite)
        return MMIOResult(value: value, hit: found.map { (kind: $0.0, address: $0.1) })
    }

    /// Where `virtual` lies in RAM through `paging`; nil where it is not mapped to RAM (before
    /// paging every address "maps" to itself, RAM or not).
    private func mapped(_ virtual: UInt64, _ paging: PagingState) -> UInt64? {
        PageWalker.translate(virtual, paging: paging, memory: ram).map(\.physical).flatMap { $0 < ram.size ? $0 : nil }
    }

    /// BreakpointTable.CodeGuard's rule: the guarded code no longer lies at `physical`.
    func codeIsGone(_ codeGuard: BreakpointTable.CodeGuard, physical: UInt64, paging: PagingState) -> Bool {
        let now = mapped(codeGuard.virtual, paging)
        if now == physical { return false }
        if now != nil || codeGuard.seenMapped { return true }
        return mapped(codeGuard.reference, paging) != nil
    }
}

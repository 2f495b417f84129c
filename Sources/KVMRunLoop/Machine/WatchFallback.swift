import CKVM

/// Watches that the memory slots cannot trap are checked around a single step instead: the
/// watched bytes before and after (writes), and the decoded reads of the instruction (reads).
/// Used for watches on page-table pages (every instruction is stepped) and for an instruction
/// KVM could not run on a trapped page (stepped once with the traps lifted).
enum WatchFallback {
    /// The memory reads of the instruction at RIP, decoded (empty if unknown). Planted
    /// breakpoints read as the bytes they replaced. `oneIteration` counts a REP string
    /// instruction as the single iteration a trap-flag step runs.
    static func decodedReads(regs given: kvm_regs, sregs: kvm_sregs, ram: GuestRAM, breakpoints: BreakpointTable,
                             oneIteration: Bool = false) -> [MemoryAccess] {
        var regs = given
        if oneIteration { regs.rcx = 1 }
        let paging = PagingState(cr0: sregs.cr0, cr3: sregs.cr3, cr4: sregs.cr4, efer: sregs.efer)
        var bytes: [UInt8] = []
        let start = sregs.cs.base &+ regs.rip
        for i in 0..<15 {
            guard let t = PageWalker.translate(start &+ UInt64(i), paging: paging, memory: ram),
                  let b = try? ram.read(at: t.physical, count: 1).first else { break }
            bytes.append(breakpoints.original(atPhysical: t.physical) ?? b)
        }
        let mode: DecodeMode = sregs.cs.l != 0 ? .long64 : (sregs.cs.db != 0 ? .protected32 : .real16)
        let gpr = [regs.rax, regs.rcx, regs.rdx, regs.rbx, regs.rsp, regs.rbp, regs.rsi, regs.rdi,
                   regs.r8, regs.r9, regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15]
        let bases = [sregs.es.base, sregs.cs.base, sregs.ss.base, sregs.ds.base, sregs.fs.base, sregs.gs.base]
        let decoded = InstructionDecoder.decode(bytes, mode: mode, registers: DecodeRegisters(
            gpr: gpr, rip: regs.rip, segmentBases: bases, rflagsDF: regs.rflags & (1 << 10) != 0))
        return decoded?.accesses.filter(\.isRead) ?? []
    }

    static func snapshot(regs: kvm_regs, sregs: kvm_sregs, watches: WatchTraps, ram: GuestRAM,
                         breakpoints: BreakpointTable, allWatches: Bool) -> WatchStepSnapshot {
        WatchStepSnapshot(watched: watches.watchedBytes(steppedPagesOnly: !allWatches),
                          reads: decodedReads(regs: regs, sregs: sregs, ram: ram, breakpoints: breakpoints),
                          regsBefore: regs, sregsBefore: sregs)
    }

    /// After the step: a changed byte under a write/access watch, else a decoded read of a
    /// read/access watch.
    static func hit(_ snapshot: WatchStepSnapshot, regsAfter: kvm_regs, watches: WatchTraps, ram: GuestRAM,
                    breakpoints: BreakpointTable) -> VCPUStop? {
        for piece in snapshot.watched {
            let now = (try? ram.read(at: piece.physical, count: piece.bytes.count)) ?? []
            if let i = piece.bytes.indices.first(where: { $0 < now.count && piece.bytes[$0] != now[$0] }) {
                return .watchpoint(piece.kind == .access ? .access : .write, address: piece.virtual + UInt64(i))
            }
        }
        var reads = snapshot.reads
        // A trap-flag step runs one iteration of a REP string instruction: RIP stays put.
        if regsAfter.rip == snapshot.regsBefore.rip {
            reads = decodedReads(regs: snapshot.regsBefore, sregs: snapshot.sregsBefore, ram: ram,
                                 breakpoints: breakpoints, oneIteration: true)
        }
        for access in reads {
            if let (kind, virtual) = watches.hitVirtual(address: access.address, length: access.size) {
                return .watchpoint(kind, address: virtual)
            }
        }
        return nil
    }
}

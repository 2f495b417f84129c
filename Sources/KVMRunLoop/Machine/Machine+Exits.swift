import CKVM

/// The exits a vCPU thread serves itself, and the questions it asks about a debug exit.
extension Machine {
    func handleIO(_ access: IOAccess, data: UnsafeMutableRawPointer) -> VCPUStop? {
        for i in 0..<max(access.count, 1) {
            let p = data.advanced(by: i * access.size)
            if access.isOut {
                var value: UInt32 = 0
                for b in 0..<min(access.size, 4) { value |= UInt32(p.load(fromByteOffset: b, as: UInt8.self)) << (8 * UInt32(b)) }
                switch bus.write(port: access.port, size: access.size, value: value) {
                case .none: break
                case .exit(let status): return .exit(status: status)
                case .powerOff: return .exit(status: 0)
                }
            } else {
                let value = bus.read(port: access.port, size: access.size)
                for b in 0..<min(access.size, 4) { p.storeBytes(of: UInt8(truncatingIfNeeded: value >> (8 * UInt32(b))), toByteOffset: b, as: UInt8.self) }
            }
        }
        return nil
    }

    func handleMMIO(vcpu: VCPU, address: UInt64, length: Int, isWrite: Bool, data: UInt64) throws -> VCPUStop? {
        if let stop = try watches.handle(vcpu: vcpu, address: address, length: length, isWrite: isWrite, data: data,
                                              planted: breakpoints) {
            return stop
        }
        return nil
    }

    /// The memory reads of the instruction at the vCPU's RIP, decoded (empty if unknown).
    /// With `regs` given, decodes with those registers (taken before a step) instead of the
    /// current ones; `oneIteration` counts a REP string instruction as the single iteration a
    /// trap-flag step runs.
    func decodedReads(vcpu: VCPU, regs given: kvm_regs? = nil, oneIteration: Bool = false) throws -> [MemoryAccess] {
        var regs = try given ?? vcpu.getRegs()
        if oneIteration { regs.rcx = 1 }
        let sregs = try vcpu.getSregs()
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

    /// The byte at `linear` is an int3 of the guest's own (not one we planted).
    func isGuestInt3(vcpu: VCPU, linear: UInt64) throws -> Bool {
        guard let t = PageWalker.translate(linear, paging: try vcpu.pagingState(), memory: ram),
              let byte = try? ram.read(at: t.physical, count: 1).first else { return false }
        return byte == 0xCC && !breakpoints.contains(physical: t.physical)
    }

    func isPlantedBreakpoint(vcpu: VCPU, linear: UInt64) throws -> Bool {
        guard let physical = PageWalker.translate(linear, paging: try vcpu.pagingState(), memory: ram) else {
            return false
        }
        return breakpoints.contains(physical: physical.physical)
    }
}

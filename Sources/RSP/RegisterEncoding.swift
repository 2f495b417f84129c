// X86_64Registers <-> the raw little-endian bytes of the `g`/`G`/`p`/`P` packets, by register
// number in a RegisterLayout (RegisterLayout.swift; x86-64 unless told otherwise). A register
// narrower than its field shows the field's low bytes and is zero-extended on write. The arrays
// in X86_64Registers are the VMM's to fill; a wrong length there reads as zeros and is padded on
// write rather than trapping.

extension X86_64Registers {
    /// Raw little-endian bytes of register `regnum`, or nil for a number gdb was not told about.
    func rawBytes(ofRegister regnum: Int, in layout: RegisterLayout = .x86_64) -> [UInt8]? {
        guard layout.registers.indices.contains(regnum) else { return nil }
        var out: [UInt8] = []
        appendRawBytes(of: layout.registers[regnum], to: &out)
        return out
    }

    /// The registers of the `g` packet in regnum order: the data of a `g` reply.
    func rawBytes(in layout: RegisterLayout) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(layout.gPacketByteCount)
        for info in layout.registers[..<layout.gPacketCount] { appendRawBytes(of: info, to: &out) }
        return out
    }

    /// The x86-64 `g` data.
    var rawBytes: [UInt8] { rawBytes(in: .x86_64) }

    /// Sets register `regnum` from exactly its size in bytes; false for an unknown number or a
    /// wrong size.
    mutating func setRawBytes(_ bytes: ArraySlice<UInt8>, ofRegister regnum: Int,
                              in layout: RegisterLayout = .x86_64) -> Bool {
        guard layout.registers.indices.contains(regnum),
              bytes.count == layout.registers[regnum].byteCount
        else { return false }
        let bytes = Array(bytes)
        // Little-endian, zero-extended; only called for registers of at most 8 bytes (vectors are
        // stored as bytes).
        func u64() -> UInt64 { bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        func u32() -> UInt32 { UInt32(truncatingIfNeeded: u64()) }
        switch layout.registers[regnum].slot {
        case .gpr(let i): Self.set(&gpr, i, u64(), count: 16, padding: 0)
        case .rip: rip = u64()
        case .eflags: eflags = u32()
        case .segment(let i): Self.set(&segments, i, u32(), count: 6, padding: 0)
        case .st(let i): Self.set(&st, i, bytes, count: 8, padding: [UInt8](repeating: 0, count: 10))
        case .x87Control(let i): Self.set(&x87Control, i, u32(), count: 8, padding: 0)
        case .xmm(let i): Self.set(&xmm, i, bytes, count: 32, padding: [UInt8](repeating: 0, count: 16))
        case .ymmh(let i): Self.set(&ymmh, i, bytes, count: 32, padding: [UInt8](repeating: 0, count: 16))
        case .zmmh(let i): Self.set(&zmmh, i, bytes, count: 32, padding: [UInt8](repeating: 0, count: 32))
        case .opmask(let i): Self.set(&k, i, u64(), count: 8, padding: 0)
        case .pkru: pkru = u32()
        case .mxcsr: mxcsr = u32()
        case .fsBase: fsBase = u64()
        case .gsBase: gsBase = u64()
        case .kernelGsBase: kernelGsBase = u64()
        case .cr0: cr0 = u64()
        case .cr2: cr2 = u64()
        case .cr3: cr3 = u64()
        case .cr4: cr4 = u64()
        case .cr8: cr8 = u64()
        case .efer: efer = u64()
        case .gdtrBase: gdtrBase = u64()
        case .gdtrLimit: gdtrLimit = u32()
        case .idtrBase: idtrBase = u64()
        case .idtrLimit: idtrLimit = u32()
        case .ldtr: ldtr.selector = u32()
        case .ldtrBase: ldtr.base = u64()
        case .ldtrLimit: ldtr.limit = u32()
        case .tr: tr.selector = u32()
        case .trBase: tr.base = u64()
        case .trLimit: tr.limit = u32()
        case .msr(let index): msrs[index] = u64()
        case .debug(let i): Self.set(&debugRegisters, i, u64(), count: 6, padding: 0)
        }
        return true
    }

    /// Applies a `G` packet's data: every register of the `g` packet the data fully covers, in
    /// regnum order (gdb may send fewer bytes than the full packet). Returns how many registers
    /// were set.
    @discardableResult
    mutating func update(fromRawBytes data: ArraySlice<UInt8>, in layout: RegisterLayout = .x86_64) -> Int {
        var updated = 0
        for (regnum, info) in layout.registers[..<layout.gPacketCount].enumerated() {
            let start = data.startIndex + layout.offsets[regnum]
            guard start + info.byteCount <= data.endIndex else { break }
            _ = setRawBytes(data[start..<(start + info.byteCount)], ofRegister: regnum, in: layout)
            updated += 1
        }
        return updated
    }

    private func appendRawBytes(of info: RegisterInfo, to out: inout [UInt8]) {
        let count = info.byteCount
        func le(_ value: UInt64) {
            var v = value
            for _ in 0..<count {
                out.append(UInt8(truncatingIfNeeded: v))
                v >>= 8
            }
        }
        func fixed(_ bytes: [UInt8]) {
            out.append(contentsOf: bytes.prefix(count))
            if bytes.count < count { out.append(contentsOf: repeatElement(0, count: count - bytes.count)) }
        }
        switch info.slot {
        case .gpr(let i): le(Self.get(gpr, i) ?? 0)
        case .rip: le(rip)
        case .eflags: le(UInt64(eflags))
        case .segment(let i): le(UInt64(Self.get(segments, i) ?? 0))
        case .st(let i): fixed(Self.get(st, i) ?? [])
        case .x87Control(let i): le(UInt64(Self.get(x87Control, i) ?? 0))
        case .xmm(let i): fixed(Self.get(xmm, i) ?? [])
        case .ymmh(let i): fixed(Self.get(ymmh, i) ?? [])
        case .zmmh(let i): fixed(Self.get(zmmh, i) ?? [])
        case .opmask(let i): le(Self.get(k, i) ?? 0)
        case .pkru: le(UInt64(pkru))
        case .mxcsr: le(UInt64(mxcsr))
        case .fsBase: le(fsBase)
        case .gsBase: le(gsBase)
        case .kernelGsBase: le(kernelGsBase)
        case .cr0: le(cr0)
        case .cr2: le(cr2)
        case .cr3: le(cr3)
        case .cr4: le(cr4)
        case .cr8: le(cr8)
        case .efer: le(efer)
        case .gdtrBase: le(gdtrBase)
        case .gdtrLimit: le(UInt64(gdtrLimit))
        case .idtrBase: le(idtrBase)
        case .idtrLimit: le(UInt64(idtrLimit))
        case .ldtr: le(UInt64(ldtr.selector))
        case .ldtrBase: le(ldtr.base)
        case .ldtrLimit: le(UInt64(ldtr.limit))
        case .tr: le(UInt64(tr.selector))
        case .trBase: le(tr.base)
        case .trLimit: le(UInt64(tr.limit))
        case .msr(let index): le(msrs[index] ?? 0)
        case .debug(let i): le(Self.get(debugRegisters, i) ?? 0)
        }
    }

    private static func get<T>(_ array: [T], _ index: Int) -> T? {
        array.indices.contains(index) ? array[index] : nil
    }

    /// Sets `array[index]`, first padding a short array to `count` entries with `padding`.
    private static func set<T>(_ array: inout [T], _ index: Int, _ value: T, count: Int, padding: T) {
        if array.count < count { array.append(contentsOf: repeatElement(padding, count: count - array.count)) }
        array[index] = value
    }
}

// X86_64Registers <-> the raw little-endian bytes of the `g`/`G`/`p`/`P` packets, by register
// number (RegisterLayout.swift). The arrays in X86_64Registers are the VMM's to fill; a wrong
// length there reads as zeros and is padded on write rather than trapping.

extension X86_64Registers {
    /// Raw little-endian bytes of register `regnum`, or nil for a number gdb was not told about.
    func rawBytes(ofRegister regnum: Int) -> [UInt8]? {
        var out: [UInt8] = []
        return appendRawBytes(ofRegister: regnum, to: &out) ? out : nil
    }

    /// All registers in regnum order: the data of a `g` reply.
    var rawBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(RegisterLayout.totalByteCount)
        for regnum in RegisterLayout.registers.indices {
            _ = appendRawBytes(ofRegister: regnum, to: &out)
        }
        return out
    }

    /// Sets register `regnum` from exactly its size in bytes; false for an unknown number or a
    /// wrong size.
    mutating func setRawBytes(_ bytes: ArraySlice<UInt8>, ofRegister regnum: Int) -> Bool {
        guard RegisterLayout.registers.indices.contains(regnum),
              bytes.count == RegisterLayout.registers[regnum].byteCount
        else { return false }
        let bytes = Array(bytes)
        func u64() -> UInt64 { bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        func u32() -> UInt32 { UInt32(truncatingIfNeeded: u64()) }
        switch regnum {
        case 0..<16: Self.set(&gpr, regnum, u64(), count: 16, padding: 0)
        case 16: rip = u64()
        case 17: eflags = u32()
        case 18..<24: Self.set(&segments, regnum - 18, u32(), count: 6, padding: 0)
        case 24..<32: Self.set(&st, regnum - 24, bytes, count: 8, padding: [UInt8](repeating: 0, count: 10))
        case 32..<40: Self.set(&x87Control, regnum - 32, u32(), count: 8, padding: 0)
        case 40..<56: Self.set(&xmm, regnum - 40, bytes, count: 16, padding: [UInt8](repeating: 0, count: 16))
        case 56: mxcsr = u32()
        case 57: fsBase = u64()
        case 58: gsBase = u64()
        case 59: kernelGsBase = u64()
        case 60: cr0 = u64()
        case 61: cr2 = u64()
        case 62: cr3 = u64()
        case 63: cr4 = u64()
        case 64: cr8 = u64()
        case 65: efer = u64()
        default: return false
        }
        return true
    }

    /// Applies a `G` packet's data: every register the data fully covers, in regnum order
    /// (gdb may send fewer bytes than the full file). Returns how many registers were set.
    @discardableResult
    mutating func update(fromRawBytes data: ArraySlice<UInt8>) -> Int {
        var updated = 0
        for (regnum, info) in RegisterLayout.registers.enumerated() {
            let start = data.startIndex + RegisterLayout.offsets[regnum]
            guard start + info.byteCount <= data.endIndex else { break }
            _ = setRawBytes(data[start..<(start + info.byteCount)], ofRegister: regnum)
            updated += 1
        }
        return updated
    }

    private func appendRawBytes(ofRegister regnum: Int, to out: inout [UInt8]) -> Bool {
        func le(_ value: UInt64, _ count: Int) {
            var v = value
            for _ in 0..<count {
                out.append(UInt8(truncatingIfNeeded: v))
                v >>= 8
            }
        }
        func fixed(_ bytes: [UInt8], _ count: Int) {
            out.append(contentsOf: bytes.prefix(count))
            if bytes.count < count { out.append(contentsOf: repeatElement(0, count: count - bytes.count)) }
        }
        switch regnum {
        case 0..<16: le(Self.get(gpr, regnum) ?? 0, 8)
        case 16: le(rip, 8)
        case 17: le(UInt64(eflags), 4)
        case 18..<24: le(UInt64(Self.get(segments, regnum - 18) ?? 0), 4)
        case 24..<32: fixed(Self.get(st, regnum - 24) ?? [], 10)
        case 32..<40: le(UInt64(Self.get(x87Control, regnum - 32) ?? 0), 4)
        case 40..<56: fixed(Self.get(xmm, regnum - 40) ?? [], 16)
        case 56: le(UInt64(mxcsr), 4)
        case 57: le(fsBase, 8)
        case 58: le(gsBase, 8)
        case 59: le(kernelGsBase, 8)
        case 60: le(cr0, 8)
        case 61: le(cr2, 8)
        case 62: le(cr3, 8)
        case 63: le(cr4, 8)
        case 64: le(cr8, 8)
        case 65: le(efer, 8)
        default: return false
        }
        return true
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

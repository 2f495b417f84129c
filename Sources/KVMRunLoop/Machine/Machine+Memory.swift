import Glibc

/// Guest memory as gdb sees it: through a vCPU's page tables (or physical in `phys on` mode),
/// with planted breakpoints hidden.
extension Machine {
    /// Translates through vCPU `index`'s page tables (or not, in physical mode).
    public func translate(_ address: UInt64, vcpu index: Int) throws(SystemError) -> UInt64? {
        if physicalAddressing { return address < ram.size ? address : nil }
        guard let paging = parkedRegisters(index)?.paging else {
            throw SystemError("translating through vCPU \(index)'s page tables (the vCPU is running)", errno: EBUSY)
        }
        return PageWalker.translate(address, paging: paging, memory: ram)?.physical
    }

    /// Reads guest memory, page by page; stops early at the first unmapped page. Planted
    /// breakpoints read as the bytes they replaced.
    public func readMemory(_ address: UInt64, count: Int, vcpu index: Int) throws(SystemError) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(count)
        let planted = breakpoints.plantedPhysical
        var cursor = address
        while result.count < count {
            let inPage = Int(0x1000 - (cursor & 0xFFF))
            let chunk = min(inPage, count - result.count)
            guard let physical = try translate(cursor, vcpu: index),
                  var bytes = try? ram.read(at: physical, count: chunk) else { break }
            if !planted.isEmpty {
                for i in 0..<chunk { if let original = planted[physical + UInt64(i)] { bytes[i] = original } }
            }
            result += bytes
            cursor &+= UInt64(chunk)
        }
        return result
    }

    /// Writes guest memory; a write over a planted breakpoint changes the byte under it and
    /// keeps the breakpoint. Returns false (having written nothing) if part is unmapped.
    public func writeMemory(_ bytes: [UInt8], at address: UInt64, vcpu index: Int) throws(SystemError) -> Bool {
        var pieces: [(UInt64, ArraySlice<UInt8>)] = []
        var offset = 0
        while offset < bytes.count {
            let cursor = address &+ UInt64(offset)
            let chunk = min(Int(0x1000 - (cursor & 0xFFF)), bytes.count - offset)
            guard let physical = try translate(cursor, vcpu: index), ram.contains(physical, count: chunk) else { return false }
            pieces.append((physical, bytes[offset..<offset + chunk]))
            offset += chunk
        }
        let planted = breakpoints.plantedPhysical
        for (physical, slice) in pieces {
            var data = Array(slice)
            for i in data.indices where planted[physical + UInt64(i)] != nil {
                breakpoints.updateOriginal(atPhysical: physical + UInt64(i), to: data[i])
                data[i] = 0xCC
            }
            try? ram.write(data, at: physical)
        }
        return true
    }
}

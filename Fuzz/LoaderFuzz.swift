// libFuzzer entry point for the guest-image loaders: arbitrary bytes go to `loadGuest` (ELF64
// direct, multiboot v1 with and without the a.out kludge, PVH, Linux bzImage) as the image, with the first byte
// choosing the RAM size, the vCPU count and the command line. Built by scripts/fuzz together
// with Sources/KVMRunLoop/Boot and the PhysicalMemory protocol as one module. Besides any trap,
// overflow or sanitizer report, these are bugs: a failed load that wrote RAM (the loaders plan
// first and write after), a write outside RAM, or a successful load whose ranges or entry
// states do not fit what was asked for.

/// RAM that keeps no bytes: it checks every access against its size and counts the writes.
final class CountingMemory: PhysicalMemory, @unchecked Sendable {
    // SAFETY (Sendable): used by one fuzzing thread only.
    let size: UInt64
    private(set) var writes = 0

    init(size: UInt64) { self.size = size }

    func read(at address: UInt64, count: Int) throws(MemoryError) -> [UInt8] {
        try check(address, count)
        return [UInt8](repeating: 0, count: count)
    }

    func write(_ bytes: [UInt8], at address: UInt64) throws(MemoryError) {
        try check(address, bytes.count)
        writes += 1
    }

    private func check(_ address: UInt64, _ count: Int) throws(MemoryError) {
        let (end, overflow) = address.addingReportingOverflow(UInt64(count))
        guard !overflow, end <= size else {
            // Every range is checked against RAM while planning: reaching this is a bug.
            preconditionFailure("loader wrote outside RAM: 0x\(String(address, radix: 16))+\(count)")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLoader(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let config = data[0]
    let image = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let ramSizes: [UInt64] = [1 << 20, 2 << 20, 16 << 20, 128 << 20, 3 << 30]
    let ram = CountingMemory(size: ramSizes[Int(config & 7) % ramSizes.count])
    let cpuCount = Int((config >> 3) & 3) + 1
    let commandLine = config & 0x20 != 0 ? String(repeating: "console=ttyS0 ", count: Int(config >> 6) * 100) : ""
    do {
        let guest = try loadGuest(image: image, into: ram, commandLine: commandLine, cpuCount: cpuCount)
        precondition(!guest.entry.isEmpty, "a loaded guest has an entry state")
        precondition(guest.entry.count == (guest.bootProtocol == .elf64Direct ? cpuCount : 1),
                     "one entry state per vCPU (ELF64 direct) or for vCPU 0 only")
        for range in guest.loadedRanges {
            precondition(range.upperBound <= ram.size, "loaded range \(range) beyond RAM")
        }
        for entry in guest.entry {
            precondition(entry.rip < ram.size || guest.bootProtocol == .elf64Direct,
                         "a 32-bit entry point outside RAM")
        }
    } catch {
        precondition(ram.writes == 0, "a failed load wrote RAM: \(error)")
        precondition(!error.message.isEmpty, "a load error explains itself")
    }
    return 0
}

import Synchronization
@testable import KVMRunLoop

/// Sparse array-backed guest RAM: pages spring into existence (zeroed) when written, so a test
/// can have gigabytes of "RAM" and pay only for the pages it touches.
final class FakeMemory: PhysicalMemory {
    let size: UInt64
    private let pages = Mutex<[UInt64: [UInt8]]>([:])
    private let writeCalls = Atomic<Int>(0)

    init(size: UInt64) { self.size = size }

    /// How many times `write` was called (to prove a failed load wrote nothing).
    var writeCount: Int { writeCalls.load(ordering: .relaxed) }

    func read(at address: UInt64, count: Int) throws(MemoryError) -> [UInt8] {
        try check(address, count)
        return pages.withLock { pages in
            var result = [UInt8](repeating: 0, count: count)
            forEachPage(address, count) { page, offset, index, length in
                if let bytes = pages[page] { result[index..<index + length] = bytes[offset..<offset + length] }
            }
            return result
        }
    }

    func write(_ bytes: [UInt8], at address: UInt64) throws(MemoryError) {
        try check(address, bytes.count)
        writeCalls.add(1, ordering: .relaxed)
        pages.withLock { pages in
            forEachPage(address, bytes.count) { page, offset, index, length in
                pages[page, default: [UInt8](repeating: 0, count: 4096)][offset..<offset + length] = bytes[index..<index + length]
            }
        }
    }

    /// Fills [address, address+count) with `byte`, bypassing the write counter.
    func fill(_ byte: UInt8, at address: UInt64, count: Int) {
        pages.withLock { pages in
            for i in 0..<count {
                let a = address + UInt64(i)
                pages[a >> 12, default: [UInt8](repeating: 0, count: 4096)][Int(a & 0xFFF)] = byte
            }
        }
    }

    /// Calls `body(page number, offset in page, index in buffer, length)` per page touched.
    private func forEachPage(_ address: UInt64, _ count: Int, _ body: (UInt64, Int, Int, Int) -> Void) {
        var index = 0
        while index < count {
            let a = address + UInt64(index)
            let offset = Int(a & 0xFFF)
            let length = min(4096 - offset, count - index)
            body(a >> 12, offset, index, length)
            index += length
        }
    }

    private func check(_ address: UInt64, _ count: Int) throws(MemoryError) {
        let (end, overflow) = address.addingReportingOverflow(UInt64(count))
        guard count >= 0, !overflow, end <= size else { throw .outOfRange(address: address, count: count) }
    }
}

final class CollectingSink: ByteSink {
    private let storage = Mutex<[UInt8]>([])
    var bytes: [UInt8] { storage.withLock { $0 } }
    var text: String { String(decoding: bytes, as: UTF8.self) }
    func write(_ bytes: [UInt8]) { storage.withLock { $0 += bytes } }
}

extension PhysicalMemory {
    /// A NUL-terminated string at `address` (up to 4 KiB).
    func readCString(at address: UInt64) throws -> String {
        var bytes: [UInt8] = []
        for i in 0..<UInt64(4096) {
            let byte = try read(at: address + i, count: 1)[0]
            if byte == 0 { break }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

let MiB: UInt64 = 1 << 20
let GiB: UInt64 = 1 << 30

import Glibc

/// Guest RAM: one anonymous host mapping that KVM sees as guest-physical [0, size).
/// The mapping never moves or shrinks while the VM exists, so the raw pointer stays valid.
public final class GuestRAM: PhysicalMemory, @unchecked Sendable {
    // SAFETY (Sendable): the only stored state is the immutable base pointer and size; byte
    // access races are the guest's own, exactly as on real hardware with several CPUs.
    public let size: UInt64
    public let base: UnsafeMutableRawPointer

    public init(size: UInt64) throws(SystemError) {
        // MAP_NORESERVE: a large -m costs nothing until the guest touches the pages.
        // SAFETY: checked against MAP_FAILED below; unmapped only in deinit, so `base` stays valid.
        let p = mmap(nil, Int(size), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else {
            throw SystemError("mmap of \(size >> 20) MiB guest RAM", errno: errno)
        }
        self.size = size
        self.base = p
    }

    deinit { munmap(base, Int(size)) }

    public func contains(_ address: UInt64, count: Int) -> Bool {
        count >= 0 && address <= size && UInt64(count) <= size - address
    }

    public func read(at address: UInt64, count: Int) throws(MemoryError) -> [UInt8] {
        guard contains(address, count: count) else { throw .outOfRange(address: address, count: count) }
        // SAFETY: the range was checked to lie inside the mapping.
        return [UInt8](UnsafeRawBufferPointer(start: base + Int(address), count: count))
    }

    public func write(_ bytes: [UInt8], at address: UInt64) throws(MemoryError) {
        guard contains(address, count: bytes.count) else {
            throw .outOfRange(address: address, count: bytes.count)
        }
        if bytes.isEmpty { return }
        // SAFETY: the range was checked to lie inside the mapping; bytes is non-empty.
        bytes.withUnsafeBytes { (base + Int(address)).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    public func copy(at address: UInt64, count: Int, to destination: UnsafeMutableRawPointer) throws(MemoryError) {
        guard contains(address, count: count) else { throw .outOfRange(address: address, count: count) }
        // SAFETY: the range was checked to lie inside the mapping; the caller provides `count`
        // writable bytes at destination.
        destination.copyMemory(from: base + Int(address), byteCount: count)
    }

    public func copy(from source: UnsafeRawPointer, count: Int, to address: UInt64) throws(MemoryError) {
        guard contains(address, count: count) else { throw .outOfRange(address: address, count: count) }
        // SAFETY: the range was checked to lie inside the mapping; the caller provides `count`
        // readable bytes at source.
        (base + Int(address)).copyMemory(from: source, byteCount: count)
    }
}

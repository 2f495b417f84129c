/// Where an initial ramdisk goes: as high as allowed, page-aligned, above the kernel. Linux
/// boot loaders (QEMU, GRUB) put it at the top of RAM so that it stays out of the way of the
/// kernel's decompression and early allocations; PVH guests get the same placement.
enum Initrd {
    static let alignment: UInt64 = 0x1000

    /// The start address of a `size`-byte initrd in [floor, ceiling), as high as it fits.
    static func place(size: UInt64, floor: UInt64, ceiling: UInt64, floorName: String,
                      ceilingName: String) throws(LoadError) -> UInt64 {
        guard size > 0 else {
            throw LoadError("the initrd file is empty; give --initrd a cpio archive (or leave the option out)")
        }
        guard size <= ceiling, (ceiling - size) & ~(alignment - 1) >= floor else {
            let room = ceiling > floor ? ceiling - floor : 0
            throw LoadError("the initrd is \(byteCount(size)), but only \(byteCount(room)) of guest RAM lie between "
                + "\(floorName) (\(hex(floor))) and \(ceilingName) (\(hex(ceiling))); give more memory with -m "
                + "or use a smaller initrd")
        }
        return (ceiling - size) & ~(alignment - 1)
    }
}

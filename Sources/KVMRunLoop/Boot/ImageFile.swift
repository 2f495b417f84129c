import Glibc

/// Reads a guest image or initrd from disk, only as much of it as booting needs, with sizes
/// checked against guest RAM before anything large is read. A debug vmlinux is ~600 MB, most
/// of it DWARF after the last segment: only its headers and segments are read (the loader never
/// looks further). A file that is not a regular file (a directory, /dev/null, /dev/zero, a
/// FIFO) is refused with what it is, before any read.
public enum ImageFile {
    /// What is read of `path`: for an ELF file, everything up to the end of the last segment's
    /// file data; for anything else the whole file, which must not be larger than `limit` (the
    /// guest's RAM: a kernel, a multiboot image or an initrd has to fit in it).
    /// - Parameter what: how messages name the file ("guest image", "initrd").
    public static func read(_ path: String, what: String, limit: UInt64) throws(LoadError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let e = errno
            switch e {
            case ENOENT: throw LoadError("\(what) \(path) does not exist")
            case EACCES, EPERM: throw LoadError("cannot read the \(what) \(path): permission denied")
            default: throw LoadError("cannot open the \(what) \(path): \(String(cString: strerror(e)))")
            }
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw LoadError("cannot examine the \(what) \(path): \(String(cString: strerror(errno)))")
        }
        if let kind = notARegularFile(info.st_mode) {
            throw LoadError("the \(what) \(path) is \(kind), not a file gdbvmm can load; give the path of the file itself")
        }
        let size = UInt64(info.st_size)
        guard size > 0 else { throw LoadError("the \(what) \(path) is empty") }
        let head = try readAt(fd, offset: 0, count: Int(min(size, 8192)), path: path)
        var extent = size
        if let elf = try elfExtent(fd, head: head, size: size, path: path, what: what, limit: limit) {
            extent = elf
        } else if what == "guest image" && !mayBeBootable(head) {
            // Neither ELF, nor bzImage, nor multiboot: the loader refuses it from these bytes.
            extent = UInt64(head.count)
        } else if size > limit {
            throw LoadError("the \(what) \(path) is \(byteCount(size)), more than the guest's \(byteCount(limit)) "
                + "of RAM it has to fit in; give more memory with -m (at most 3G), or check that this is the right file")
        }
        if extent <= UInt64(head.count) { return Array(head.prefix(Int(extent))) }
        return head + (try readAt(fd, offset: UInt64(head.count), count: Int(extent) - head.count, path: path))
    }

    /// A bzImage's setup header, or a multiboot header in the first 8 KiB (where the loader
    /// looks for one).
    static func mayBeBootable(_ head: [UInt8]) -> Bool {
        let fields = HeaderFields(head)
        if fields.u16(0x1FE) == 0xAA55 && fields.u32(0x202) == 0x5372_6448 { return true }  // "HdrS"
        return stride(from: 0, to: head.count - 3, by: 4).contains { fields.u32($0) == MultibootHeader.magic }
    }

    static func notARegularFile(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO (named pipe) or a pipe"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }

    /// For an ELF file: the end of its last PT_LOAD or PT_NOTE file data (and of the program
    /// headers), after checking each segment's file data fits in `limit`. Nil when the file is
    /// not ELF, or its headers are too damaged to say: then it is read whole, and the loader
    /// explains what is wrong with it.
    static func elfExtent(_ fd: Int32, head: [UInt8], size: UInt64, path: String, what: String,
                          limit: UInt64) throws(LoadError) -> UInt64? {
        guard head.count >= 52, head[0] == 0x7F, head[1] == 0x45, head[2] == 0x4C, head[3] == 0x46 else { return nil }
        let fields = HeaderFields(head)
        let is64 = head[4] == 2
        guard is64 || head[4] == 1, !is64 || head.count >= 64 else { return nil }
        let phoff = is64 ? fields.u64(32) : UInt64(fields.u32(28))
        let phentsize = UInt64(is64 ? fields.u16(54) : fields.u16(42))
        let phnum = UInt64(is64 ? fields.u16(56) : fields.u16(44))
        let minimum: UInt64 = is64 ? 56 : 32
        guard phnum > 0, phnum != 0xFFFF, phentsize >= minimum, phoff < size,
              phentsize * phnum <= size - phoff else { return nil }
        let table = try readAt(fd, offset: phoff, count: Int(phentsize * phnum), path: path)
        var extent = phoff + phentsize * phnum
        for index in 0..<Int(phnum) {
            let entry = HeaderFields(Array(table[index * Int(phentsize)..<index * Int(phentsize) + Int(minimum)]))
            let type = entry.u32(0)
            guard type == ELFProgramHeader.typeLoad || type == ELFProgramHeader.typeNote else { continue }
            let offset = is64 ? entry.u64(8) : UInt64(entry.u32(4))
            let fileSize = is64 ? entry.u64(32) : UInt64(entry.u32(16))
            if type == ELFProgramHeader.typeLoad, fileSize > limit {
                throw LoadError("segment \(index) of the \(what) \(path) has \(byteCount(fileSize)) of file data, more than "
                    + "the guest's \(byteCount(limit)) of RAM; give more memory with -m (at most 3G), or check the file")
            }
            let (end, overflow) = offset.addingReportingOverflow(fileSize)
            // Past the end of the file: the loader says "truncated" with the details.
            guard !overflow, end <= size else { return nil }
            extent = max(extent, end)
        }
        return extent
    }

    static func readAt(_ fd: Int32, offset: UInt64, count: Int, path: String) throws(LoadError) -> [UInt8] {
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var done = 0
            while done < count {
                // SAFETY: the destination is the array's own uninitialized capacity, `count`
                // bytes long, and done < count.
                let n = pread(fd, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failure = n == 0 ? EIO : errno; break }
                done += n
            }
            initialized = done
        }
        guard failure == 0 else {
            throw LoadError("cannot read \(path): \(failure == EIO ? "the file ended early (was it changed while gdbvmm read it?)" : String(cString: strerror(failure)))")
        }
        return bytes
    }
}

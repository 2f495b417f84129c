import Foundation
import Glibc
import Testing
@testable import KVMRunLoop

/// What is read of an image file, and the files that are refused before anything is read.
@Suite struct ImageFileTests {
    let directory: String = {
        let path = NSTemporaryDirectory() + "gdbvmm-imagefile-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    func file(_ name: String, _ bytes: [UInt8]) -> String {
        let path = directory + "/" + name
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    func message(_ body: () throws(LoadError) -> [UInt8]) -> String? {
        do { _ = try body(); return nil } catch { return error.message }
    }

    @Test("files that are not regular files are named for what they are", arguments: [
        ("/dev/null", "a character device"), ("/dev/zero", "a character device"), ("/", "a directory"),
    ])
    func notRegularFiles(path: String, kind: String) {
        let text = message { () throws(LoadError) in try ImageFile.read(path, what: "guest image", limit: 1 << 30) }
        #expect(text == "the guest image \(path) is \(kind), not a file gdbvmm can load; give the path of the file itself")
    }

    @Test func aFIFOIsRefusedWithoutBlocking() {
        let path = directory + "/fifo"
        #expect(mkfifo(path, 0o600) == 0)
        let text = message { () throws(LoadError) in try ImageFile.read(path, what: "initrd", limit: 1 << 30) }
        #expect(text?.contains("is a FIFO (named pipe) or a pipe") == true, "\(text ?? "read it")")
    }

    @Test func missingAndEmptyFiles() {
        #expect(message { () throws(LoadError) in try ImageFile.read(directory + "/none", what: "initrd", limit: 1 << 20) }
            == "initrd \(directory)/none does not exist")
        let empty = file("empty", [])
        #expect(message { () throws(LoadError) in try ImageFile.read(empty, what: "guest image", limit: 1 << 20) }
            == "the guest image \(empty) is empty")
    }

    @Test("an ELF file is read up to the end of its last segment: what follows (a vmlinux's DWARF) stays on disk")
    func elfIsReadUpToItsLastSegment() throws {
        let elf = ELFBuilder(entry: 0x100000, segments: [
            .init(at: 0x100000, data: [UInt8](repeating: 0x90, count: 5000)),
            .init(at: 0x200000, data: [1, 2, 3], memorySize: 0x1000),
        ]).build()
        let path = file("kernel", elf + [UInt8](repeating: 0xEE, count: 3 << 20))
        let read = try ImageFile.read(path, what: "guest image", limit: 1 << 20)
        #expect(read == elf)
        // The loader sees what it would have seen of the whole file.
        let memory = FakeMemory(size: 64 << 20)
        let guest = try loadGuest(image: read, into: memory, commandLine: "", cpuCount: 1)
        #expect(guest.loadedRanges == [0x100000..<0x101388, 0x200000..<0x201000])
    }

    @Test func aSegmentLargerThanRAMIsRefusedBeforeItIsRead() {
        var elf = ELFBuilder(entry: 0x100000, segments: [.init(at: 0x100000, data: [UInt8](repeating: 1, count: 0x3000))]).build()
        elf += [UInt8](repeating: 0, count: 16)
        let path = file("big", elf)
        let text = message { () throws(LoadError) in try ImageFile.read(path, what: "guest image", limit: 0x2000) }
        #expect(text == "segment 0 of the guest image \(path) has 12 KiB of file data, more than the guest's 8 KiB of RAM; "
            + "give more memory with -m (at most 3G), or check the file")
    }

    @Test("a file that cannot boot is read no further than its head; a bootable one larger than RAM is refused")
    func headsAndSizes() throws {
        let junk = file("junk", [UInt8](repeating: 0x41, count: 100_000))
        #expect(try ImageFile.read(junk, what: "guest image", limit: 1 << 20).count == 8192)
        var bz = [UInt8](repeating: 0, count: 100_000)
        bz[0x1FE] = 0x55; bz[0x1FF] = 0xAA
        bz.replaceSubrange(0x202..<0x206, with: Array("HdrS".utf8))
        let bzPath = file("bz", bz)
        #expect(try ImageFile.read(bzPath, what: "guest image", limit: 1 << 20) == bz)
        #expect(message { () throws(LoadError) in try ImageFile.read(bzPath, what: "guest image", limit: 0x10000) }
            == "the guest image \(bzPath) is 97.6 KiB, more than the guest's 64 KiB of RAM it has to fit in; "
            + "give more memory with -m (at most 3G), or check that this is the right file")
        // An initrd is data: read whole when it fits.
        #expect(try ImageFile.read(junk, what: "initrd", limit: 1 << 20).count == 100_000)
    }

    @Test("the image map covers executable segments only (a vmlinux's per-CPU segment has p_vaddr 0)")
    func imageMap() throws {
        var text = ELFBuilder.Segment(at: 0x400000, virtual: 0x80_0000_0000, data: [0xC3], memorySize: 0x2000)
        text.flags = 5
        var percpu = ELFBuilder.Segment(at: 0x600000, virtual: 0, data: [0], memorySize: 0x1000)
        percpu.flags = 6
        let elf = ELFBuilder(entry: 0x400000, segments: [text, percpu]).build()
        let guest = try loadGuest(image: elf, into: FakeMemory(size: 64 << 20), commandLine: "", cpuCount: 1)
        #expect(guest.imagePhysical(forVirtual: 0x80_0000_1234) == 0x401234)
        #expect(guest.imagePhysical(forVirtual: 0x80_0000_2000) == nil)
        #expect(guest.imagePhysical(forVirtual: 0x10) == nil)
    }
}

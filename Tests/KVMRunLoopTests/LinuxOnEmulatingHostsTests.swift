import Testing
@testable import KVMRunLoop

/// What Linux gets on its command line where KVM emulates guest kernel code.
@Suite("Linux on emulating hosts")
struct LinuxOnEmulatingHostsTests {
    static let pvhLinux = ELFBuilder(entry: 0x100000, segments: [.init(at: 0x100000, data: [0xF4])],
                                     notes: [.init(name: "Xen", type: 6, descriptor: Array("linux\0".utf8)),
                                             .init(name: "Xen", type: 18, descriptor: [0, 0, 0x10, 0])]).build()
    static let otherPVH = ELFBuilder(entry: 0x100000, segments: [.init(at: 0x100000, data: [0xF4])],
                                     notes: [.init(name: "Xen", type: 18, descriptor: [0, 0, 0x10, 0])]).build()

    @Test("a bzImage or a Linux vmlinux gets noxsave, clearcpuid=129,137,147,148,151,153,308 and cryptomgr.notests; other guests and hosts nothing")
    func additions() {
        let bz = BzImageBuilder().build()
        #expect(LinuxOnEmulatingHosts.commandLine("console=ttyS0", image: bz, emulatingHost: true)
                == "console=ttyS0 noxsave clearcpuid=129,137,147,148,151,153,308 cryptomgr.notests")
        #expect(LinuxOnEmulatingHosts.commandLine("", image: Self.pvhLinux, emulatingHost: true) == "noxsave clearcpuid=129,137,147,148,151,153,308 cryptomgr.notests")
        #expect(LinuxOnEmulatingHosts.commandLine("console=ttyS0", image: Self.otherPVH, emulatingHost: true) == "console=ttyS0")
        #expect(LinuxOnEmulatingHosts.commandLine("console=ttyS0", image: bz, emulatingHost: false) == "console=ttyS0")
        #expect(LinuxOnEmulatingHosts.commandLine("x", image: [0x7F, 0x45], emulatingHost: true) == "x")
    }

    @Test("parameters the user gave are not repeated")
    func noRepeats() {
        let bz = BzImageBuilder().build()
        #expect(LinuxOnEmulatingHosts.commandLine("noxsave clearcpuid=1 cryptomgr.notests", image: bz, emulatingHost: true)
                == "noxsave clearcpuid=1 cryptomgr.notests")
        #expect(LinuxOnEmulatingHosts.commandLine("noxsave clearcpuid=1", image: bz, emulatingHost: true)
                == "noxsave clearcpuid=1 cryptomgr.notests")
        #expect(LinuxOnEmulatingHosts.commandLine("nokaslr noxsave", image: bz, emulatingHost: true)
                == "nokaslr noxsave clearcpuid=129,137,147,148,151,153,308 cryptomgr.notests")
    }
}

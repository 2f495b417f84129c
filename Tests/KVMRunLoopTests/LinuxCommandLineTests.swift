import Testing
@testable import KVMRunLoop

/// What Linux gets on its command line from gdbvmm, everywhere and where KVM emulates guest
/// kernel code.
@Suite("Linux command line")
struct LinuxCommandLineTests {
    static let pvhLinux = ELFBuilder(entry: 0x100000, segments: [.init(at: 0x100000, data: [0xF4])],
                                     notes: [.init(name: "Xen", type: 6, descriptor: Array("linux\0".utf8)),
                                             .init(name: "Xen", type: 18, descriptor: [0, 0, 0x10, 0])]).build()
    static let otherPVH = ELFBuilder(entry: 0x100000, segments: [.init(at: 0x100000, data: [0xF4])],
                                     notes: [.init(name: "Xen", type: 18, descriptor: [0, 0, 0x10, 0])]).build()
    static let emulating = "noxsave clearcpuid=129,137,147,148,151,153,308 cryptomgr.notests"

    @Test("a bzImage or a Linux vmlinux gets reboot=acpi, and where KVM emulates noxsave, clearcpuid=129,137,147,148,151,153,308 and cryptomgr.notests; other guests nothing")
    func additions() {
        let bz = BzImageBuilder().build()
        #expect(LinuxCommandLine.commandLine("console=ttyS0", image: bz, emulatingHost: true)
                == "console=ttyS0 reboot=acpi \(Self.emulating)")
        #expect(LinuxCommandLine.commandLine("", image: Self.pvhLinux, emulatingHost: true) == "reboot=acpi \(Self.emulating)")
        #expect(LinuxCommandLine.commandLine("console=ttyS0", image: bz, emulatingHost: false) == "console=ttyS0 reboot=acpi")
        #expect(LinuxCommandLine.commandLine("", image: Self.pvhLinux, emulatingHost: false) == "reboot=acpi")
        #expect(LinuxCommandLine.commandLine("console=ttyS0", image: Self.otherPVH, emulatingHost: true) == "console=ttyS0")
        #expect(LinuxCommandLine.commandLine("console=ttyS0", image: Self.otherPVH, emulatingHost: false) == "console=ttyS0")
        #expect(LinuxCommandLine.commandLine("x", image: [0x7F, 0x45], emulatingHost: true) == "x")
    }

    @Test("parameters the user gave are not repeated")
    func noRepeats() {
        let bz = BzImageBuilder().build()
        #expect(LinuxCommandLine.commandLine("reboot=k noxsave clearcpuid=1 cryptomgr.notests", image: bz, emulatingHost: true)
                == "reboot=k noxsave clearcpuid=1 cryptomgr.notests")
        #expect(LinuxCommandLine.commandLine("noxsave clearcpuid=1", image: bz, emulatingHost: true)
                == "noxsave clearcpuid=1 reboot=acpi cryptomgr.notests")
        #expect(LinuxCommandLine.commandLine("nokaslr noxsave reboot=t", image: bz, emulatingHost: false)
                == "nokaslr noxsave reboot=t")
        #expect(LinuxCommandLine.commandLine("nokaslr noxsave", image: bz, emulatingHost: true)
                == "nokaslr noxsave reboot=acpi clearcpuid=129,137,147,148,151,153,308 cryptomgr.notests")
    }
}

/// What gdbvmm adds to a Linux kernel's command line where guest kernel code runs under KVM's
/// instruction emulator (Kvm.emulatesGuestKernelCode), for the instructions that emulator
/// cannot execute and CPUID cannot hide there (measured booting Debian's cloud kernel):
/// `noxsave` (XSAVE/XRSTOR: the FPU is then saved with FXSAVE) and `clearcpuid=151,308`
/// (X86_FEATURE_POPCNT, word 4 bit 23: `__bitmap_weight` keeps its software fallback;
/// X86_FEATURE_SMAP, word 9 bit 20: the entry code's CLAC/STAC stay NOPs).
public enum LinuxOnEmulatingHosts {
    public static let commandLineAdditions = "noxsave clearcpuid=151,308"

    /// The command line to boot `image` with: `commandLine`, plus the additions when the image
    /// is a Linux kernel (a bzImage, or an ELF whose Xen GUEST_OS note says "linux") and the
    /// host emulates guest kernel code. Parameters the user already gave are not repeated.
    public static func commandLine(_ commandLine: String, image: [UInt8], emulatingHost: Bool) -> String {
        guard emulatingHost, isLinux(image) else { return commandLine }
        let given = Set(commandLine.split(separator: " ").map { $0.split(separator: "=").first.map(String.init) ?? "" })
        let missing = commandLineAdditions.split(separator: " ").filter {
            !given.contains($0.split(separator: "=").first.map(String.init) ?? "")
        }
        return ([commandLine] + missing.map(String.init)).filter { !$0.isEmpty }.joined(separator: " ")
    }

    static func isLinux(_ image: [UInt8]) -> Bool {
        if BzImage.hasMagic(image) { return true }
        guard ELFImage.hasMagic(image), let elf = try? ELFImage(parsing: image) else { return false }
        // XEN_ELFNOTE_GUEST_OS (6): "linux" for Linux's PVH-capable vmlinux.
        return elf.notes.contains { $0.name == "Xen" && $0.type == 6 && $0.descriptor.starts(with: Array("linux".utf8)) }
    }
}

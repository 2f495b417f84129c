/// What gdbvmm adds to a Linux kernel's command line (a bzImage, or an ELF whose Xen GUEST_OS
/// note says "linux"), after the user's; parameters the user gave are not repeated.
///
/// Everywhere, `reboot=acpi`. gdbvmm's ACPI tables describe a hardware-reduced platform
/// (ACPITables), and on x86 Linux then leaves its reboot to EFI (efi_reboot_required), EFI or
/// not: without EFI it falls back to a BIOS restart in real mode, with no BIOS to go to (an
/// emulation failure where KVM emulates guest kernel code, a hang elsewhere). `reboot=acpi`
/// has it write the FADT's reset register (ResetControl): the VM ends with status 6.
///
/// Where guest kernel code runs under KVM's instruction emulator (Kvm.emulatesGuestKernelCode),
/// for the instructions that emulator cannot execute and CPUID cannot hide there (measured
/// booting Debian's cloud kernel): `noxsave` (XSAVE/XRSTOR: the FPU is then saved with FXSAVE)
/// and `clearcpuid=` with X86_FEATURE_POPCNT (word 4 bit 23, 151: `__bitmap_weight` keeps its
/// software fallback), X86_FEATURE_SMAP (word 9 bit 20, 308: the entry code's CLAC/STAC stay
/// NOPs), and the SIMD extensions beyond x86-64's baseline SSE2 that gate the kernel's
/// in-kernel SIMD code: SSSE3 (137: blake2s, which random.c mixes its pool with from the first
/// device_initcall, would run `kernel_fpu_begin`'s `ldmxcsr` and then SSSE3 code), SSE4.1
/// (147), SSE4.2 (148: also the `crc32` instruction), PCLMULQDQ (129) and AES-NI (153) for the
/// crypto code that picks them. And `cryptomgr.notests`: the crypto manager's self-tests of
/// every algorithm registered run at boot, and the Diffie-Hellman one alone (4096-bit modular
/// exponentiation) kept Debian's kernel from reaching /init for more than 20 minutes there, in
/// its late initcalls; without them it gets there in 17.
public enum LinuxCommandLine {
    public static let additions = "reboot=acpi"
    public static let emulatingHostAdditions = "noxsave clearcpuid=129,137,147,148,151,153,308 cryptomgr.notests"

    /// The command line to boot `image` with: `commandLine`, plus the additions when the image
    /// is a Linux kernel (those for emulating hosts too when `emulatingHost`).
    public static func commandLine(_ commandLine: String, image: [UInt8], emulatingHost: Bool) -> String {
        guard isLinux(image) else { return commandLine }
        let given = Set(commandLine.split(separator: " ").map { $0.split(separator: "=").first.map(String.init) ?? "" })
        let wanted = emulatingHost ? additions + " " + emulatingHostAdditions : additions
        let missing = wanted.split(separator: " ").filter {
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

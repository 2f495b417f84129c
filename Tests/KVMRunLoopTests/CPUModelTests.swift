import CKVM
import Testing
@testable import KVMRunLoop

/// The CPUID a guest sees: the host's, with its APIC ID, minus what KVM's emulator cannot run
/// where guest kernel code is emulated.
@Suite("CPU model")
struct CPUModelTests {
    let supported: [kvm_cpuid_entry2]

    init() {
        var entries: [kvm_cpuid_entry2] = []
        // Leaf 1: SSE3 (0), CX16 (13), SSE4.2 (20), POPCNT (23), XSAVE (26), OSXSAVE (27), AVX (28).
        let leaf1: UInt32 = 0x1E98_2203
        var e1 = kvm_cpuid_entry2()
        e1.function = 1
        e1.ebx = 0x0800_0000
        e1.ecx = leaf1
        entries.append(e1)
        var e7 = kvm_cpuid_entry2()
        e7.function = 7
        e7.ebx = 0x8001_0028   // BMI1 (3), AVX2 (5), AVX512F (16), AVX512VL (31)
        entries.append(e7)
        supported = entries
    }

    @Test("on VMX/SVM the guest keeps every host feature, with its APIC ID and the hypervisor bit")
    func hardwareKeepsFeatures() {
        let out = Machine.cpuid(supported, apicID: 3, emulated: false)
        #expect(out[0].ecx == supported[0].ecx | 1 << 31)
        #expect(out[0].ebx >> 24 == 3)
        #expect(out[1].ebx == supported[1].ebx)
    }

    @Test("where guest kernel code is emulated: no CMPXCHG16B, POPCNT, XSAVE, AVX, AVX2, AVX-512, SSSE3, SSE4, PCLMULQDQ, AES-NI")
    func emulatorHidesFeatures() {
        let out = Machine.cpuid(supported, apicID: 0, emulated: true)
        let ecx = out[0].ecx
        #expect(ecx & (1 << 13) == 0 && ecx & (1 << 23) == 0)
        #expect(ecx & (1 << 26) == 0 && ecx & (1 << 27) == 0 && ecx & (1 << 28) == 0)
        #expect(ecx & (1 << 1) == 0 && ecx & (1 << 9) == 0 && ecx & (1 << 19) == 0 && ecx & (1 << 20) == 0
                && ecx & (1 << 25) == 0, "PCLMULQDQ, SSSE3, SSE4.1, SSE4.2, AES-NI go")
        #expect(ecx & (1 << 0) != 0, "what the emulator runs stays (SSE3)")
        #expect(ecx & (1 << 31) != 0)
        #expect(out[1].ebx == 1 << 3, "BMI1 stays; AVX2 and AVX-512 go")
    }
}

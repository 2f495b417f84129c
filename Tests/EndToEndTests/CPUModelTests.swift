import Foundation
import Glibc
import Testing

/// The CPUID a guest sees (the cpuid guest prints it): the host's features, with the hypervisor
/// bit, minus what KVM's instruction emulator cannot run where guest kernel code is emulated.
@Suite("CPU model", .enabled(if: Harness.hasKVM, "needs /dev/kvm"))
struct CPUModelEndToEndTests {
    static let emulatingHost = access("/sys/module/kvm_pvm", F_OK) == 0

    func words() -> [String: UInt32] {
        let r = Harness.run([Harness.binary, Harness.guest("cpuid")], timeout: 30)
        #expect(r.status == 35, "stderr: \(r.stderr)")
        var result: [String: UInt32] = [:]
        for line in r.stdout.split(separator: "\n") {
            let parts = line.split(separator: "=")
            if parts.count == 2, let value = UInt32(parts[1], radix: 16) { result[String(parts[0])] = value }
        }
        return result
    }

    @Test("the hypervisor bit is set; CMPXCHG16B is hidden exactly where guest kernel code is emulated")
    func featureWords() throws {
        let w = words()
        let ecx = try #require(w["leaf1.ecx"], "cpuid guest output")
        #expect(ecx & (1 << 31) != 0)
        if Self.emulatingHost {
            // KVM's emulator cannot run `lock cmpxchg16b` (SLUB's first use in Linux).
            #expect(ecx & (1 << 13) == 0, "leaf1.ecx = 0x\(String(ecx, radix: 16))")
        } else {
            let host = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
            let hostHasCX16 = host.split(separator: "\n").first { $0.hasPrefix("flags") }?.contains(" cx16") ?? false
            #expect((ecx & (1 << 13) != 0) == hostHasCX16, "on VMX/SVM the guest keeps the host's CMPXCHG16B")
        }
    }
}

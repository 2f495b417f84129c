import CKVM
import Testing
@testable import KVMRunLoop

/// The XSAVE layout and optional MSRs from CPUID data, as a guest's leaf 0xD (and leaves 7,
/// 0x80000001, 0x80000008) would report them: offsets are taken, never assumed.
@Suite struct XSaveLayoutTests {
    func entry(_ function: UInt32, _ index: UInt32 = 0, eax: UInt32 = 0, ebx: UInt32 = 0, ecx: UInt32 = 0,
               edx: UInt32 = 0) -> kvm_cpuid_entry2 {
        var e = kvm_cpuid_entry2()
        e.function = function
        e.index = index
        e.eax = eax
        e.ebx = ebx
        e.ecx = ecx
        e.edx = edx
        return e
    }

    /// An AVX-512 CPU with the standard (Intel) offsets, PKRU at 0xA80.
    var avx512CPU: [kvm_cpuid_entry2] {
        [entry(0xD, 0, eax: 0x2E7, ebx: 0xA88, ecx: 0xA88),
         entry(0xD, 1, eax: 0xF),
         entry(0xD, 2, eax: 256, ebx: 576),
         entry(0xD, 5, eax: 64, ebx: 1088),
         entry(0xD, 6, eax: 512, ebx: 1152),
         entry(0xD, 7, eax: 1024, ebx: 1664),
         entry(0xD, 9, eax: 8, ebx: 2688),
         entry(7, 0, edx: 1 << 26),
         entry(0x8000_0001, 0, edx: 1 << 27)]
    }

    @Test func avx512LayoutFromCPUID() throws {
        let support = GuestRegisterSupport(cpuid: avx512CPU)
        let x = support.xsave
        #expect(x.hasAVX && x.hasAVX512 && x.hasPKRU)
        #expect(support.hasTSCAux && support.hasSpecCtrl)
        #expect(x.ymmHigh(0) == 576..<592 && x.ymmHigh(15) == 816..<832)
        // zmm16-31 live whole in Hi16_ZMM: xmm at +0, ymm high at +16, zmm high at +32.
        #expect(x.xmmHigh(16) == 1664..<1680 && x.ymmHigh(16) == 1680..<1696 && x.zmmHigh(16) == 1696..<1728)
        #expect(x.xmmHigh(31) == (1664 + 15 * 64)..<(1664 + 15 * 64 + 16))
        #expect(x.zmmHigh(0) == 1152..<1184 && x.zmmHigh(15) == (1152 + 480)..<(1152 + 512))
        #expect(x.opmask(0) == 1088..<1096 && x.opmask(7) == 1144..<1152)
        #expect(x.pkruRange == 2688..<2692)
        #expect(x.ymmHigh(32) == nil && x.opmask(8) == nil && x.xmmHigh(15) == nil)
    }

    @Test func offsetsFollowTheCPUNotAConstant() {
        // The same components somewhere else (as another CPU could place them).
        let moved = [entry(0xD, 0, eax: 0x7), entry(0xD, 2, eax: 256, ebx: 1024)]
        let x = XSaveLayout(cpuid: moved)
        #expect(x.hasAVX && !x.hasAVX512 && !x.hasPKRU)
        #expect(x.ymmHigh(0) == 1024..<1040)
        #expect(x.zmmHigh(0) == nil && x.xmmHigh(16) == nil && x.pkruRange == nil)
    }

    @Test func untrustworthyEntriesAreIgnored() {
        let x = XSaveLayout(cpuid: [
            // AVX not enabled in XCR0's supported mask: ignored even with a sub-leaf.
            entry(0xD, 0, eax: 0x203),
            entry(0xD, 2, eax: 256, ebx: 576),
            // PKRU beyond a 4 KiB image.
            entry(0xD, 9, eax: 8, ebx: 4092),
        ])
        #expect(!x.hasAVX && !x.hasPKRU)
        // Too small, overlapping the legacy area, or a supervisor component.
        let y = XSaveLayout(cpuid: [
            entry(0xD, 0, eax: 0x2E7),
            entry(0xD, 2, eax: 128, ebx: 576),
            entry(0xD, 5, eax: 64, ebx: 100),
            entry(0xD, 9, eax: 8, ebx: 2688, ecx: 1),
        ])
        #expect(y.components.isEmpty)
        // No leaf 0xD at all: the baseline.
        #expect(GuestRegisterSupport(cpuid: []) == .baseline)
    }

    @Test func writesMarkTheComponentsTheyChange() {
        let x = XSaveLayout(cpuid: avx512CPU)
        let old = [UInt8](repeating: 0, count: 4096)
        var image = old
        // Nothing changed above the legacy area: only x87 and SSE marked.
        #expect(Array(x.markingWrittenComponents(image, old: old)[512..<520]) == [3, 0, 0, 0, 0, 0, 0, 0])
        image[590] = 1  // ymm0 high
        image[1100] = 1  // k1
        image[2688] = 1  // pkru
        let marked = x.markingWrittenComponents(image, old: old)
        // Bits 0, 1, 2, 5 and 9.
        #expect(Array(marked[512..<520]) == [0x27, 0x02, 0, 0, 0, 0, 0, 0])
        #expect(marked[590] == 1 && marked[2688] == 1)
    }
}

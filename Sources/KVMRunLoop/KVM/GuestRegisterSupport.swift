import CKVM

/// Where each XSAVE state component lies in the image KVM_GET_XSAVE returns (the standard,
/// non-compacted format), as the guest's CPUID leaf 0xD reports it: sub-leaf 0 lists the
/// components XCR0 may enable, sub-leaf n gives component n's size (EAX) and offset (EBX).
/// Offsets differ between CPUs, so they are never hard-coded.
public struct XSaveLayout: Sendable, Equatable {
    public struct Component: Sendable, Equatable {
        public var offset: Int
        public var size: Int
        public init(offset: Int, size: Int) {
            self.offset = offset
            self.size = size
        }
    }

    /// The user state components beyond x87 and SSE (which sit at fixed places in the legacy
    /// area), by component number: 2 AVX, 5 opmask, 6 ZMM_Hi256, 7 Hi16_ZMM, 9 PKRU...
    public let components: [Int: Component]

    public static let avx = 2, opmask = 5, zmmHi256 = 6, hi16ZMM = 7, pkru = 9

    public init(components: [Int: Component]) {
        self.components = components
    }

    /// Components that fit in an image of `imageSize` bytes and have the size their
    /// registers need; anything else in the CPUID is ignored rather than trusted.
    public init(cpuid: [kvm_cpuid_entry2], imageSize: Int = 4096) {
        let leaf0 = cpuid.first { $0.function == 0xD && $0.index == 0 }
        let supported = UInt64(leaf0?.eax ?? 0) | UInt64(leaf0?.edx ?? 0) << 32
        let needed = [XSaveLayout.avx: 256, XSaveLayout.opmask: 64, XSaveLayout.zmmHi256: 512,
                      XSaveLayout.hi16ZMM: 1024, XSaveLayout.pkru: 4]
        var found: [Int: Component] = [:]
        for entry in cpuid where entry.function == 0xD && entry.index >= 2 && entry.index < 64 {
            let n = Int(entry.index)
            // ECX bit 0: a supervisor component (IA32_XSS), not in the user image.
            guard supported & (1 << UInt64(n)) != 0, entry.ecx & 1 == 0 else { continue }
            let component = Component(offset: Int(entry.ebx), size: Int(entry.eax))
            guard component.offset >= 576, component.size >= (needed[n] ?? 1),
                  component.offset + component.size <= imageSize
            else { continue }
            found[n] = component
        }
        components = found
    }

    public var hasAVX: Bool { components[Self.avx] != nil }
    /// All three AVX-512 components (the CPU enables them together).
    public var hasAVX512: Bool {
        components[Self.opmask] != nil && components[Self.zmmHi256] != nil && components[Self.hi16ZMM] != nil
    }
    public var hasPKRU: Bool { components[Self.pkru] != nil }

    /// Bits 128-255 of ymm `i` (16 bytes): component 2 for 0-15, Hi16_ZMM for 16-31.
    public func ymmHigh(_ i: Int) -> Range<Int>? {
        switch i {
        case 0..<16: range(Self.avx, at: 16 * i, count: 16)
        case 16..<32: range(Self.hi16ZMM, at: 64 * (i - 16) + 16, count: 16)
        default: nil
        }
    }

    /// Bits 256-511 of zmm `i` (32 bytes).
    public func zmmHigh(_ i: Int) -> Range<Int>? {
        switch i {
        case 0..<16: range(Self.zmmHi256, at: 32 * i, count: 32)
        case 16..<32: range(Self.hi16ZMM, at: 64 * (i - 16) + 32, count: 32)
        default: nil
        }
    }

    /// xmm16-31 (16 bytes each): the low quarter of zmm16-31.
    public func xmmHigh(_ i: Int) -> Range<Int>? {
        (16..<32).contains(i) ? range(Self.hi16ZMM, at: 64 * (i - 16), count: 16) : nil
    }

    /// k0-k7 (8 bytes each).
    public func opmask(_ i: Int) -> Range<Int>? {
        (0..<8).contains(i) ? range(Self.opmask, at: 8 * i, count: 8) : nil
    }

    public var pkruRange: Range<Int>? { range(Self.pkru, at: 0, count: 4) }

    /// The component whose area holds byte `offset` of the image, if any.
    public func component(containing offset: Int) -> Int? {
        components.first { offset >= $0.value.offset && offset < $0.value.offset + $0.value.size }?.key
    }

    /// `image` with XSTATE_BV (bytes 512-519) marking x87, SSE and every component whose bytes
    /// differ from `old` as present: KVM_SET_XSAVE loads a component whose bit is clear in its
    /// initial state, which would drop what gdb wrote.
    public func markingWrittenComponents(_ image: [UInt8], old: [UInt8]) -> [UInt8] {
        var image = image
        guard image.count >= 520 else { return image }
        var bits: UInt64 = 0x3
        for offset in 576..<min(image.count, old.count) where image[offset] != old[offset] {
            if let component = component(containing: offset) { bits |= 1 << UInt64(component) }
        }
        for i in 0..<8 { image[512 + i] |= UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i))) }
        return image
    }

    private func range(_ component: Int, at start: Int, count: Int) -> Range<Int>? {
        guard let c = components[component], start + count <= c.size else { return nil }
        return (c.offset + start)..<(c.offset + start + count)
    }
}

/// The register sets a guest's CPUID gives it beyond the baseline: its XSAVE components and the
/// optional MSRs. Read once per VM: CPUID does not change while the guest runs.
public struct GuestRegisterSupport: Sendable, Equatable {
    public var xsave: XSaveLayout
    /// IA32_TSC_AUX: RDTSCP (0x80000001 EDX bit 27) or RDPID (leaf 7 ECX bit 22).
    public var hasTSCAux: Bool
    /// IA32_SPEC_CTRL: Intel's (leaf 7 EDX bit 26) or AMD's IBRS (0x80000008 EBX bit 14).
    public var hasSpecCtrl: Bool

    public init(xsave: XSaveLayout, hasTSCAux: Bool, hasSpecCtrl: Bool) {
        self.xsave = xsave
        self.hasTSCAux = hasTSCAux
        self.hasSpecCtrl = hasSpecCtrl
    }

    public init(cpuid: [kvm_cpuid_entry2], xsaveImageSize: Int = 4096) {
        func leaf(_ function: UInt32, _ index: UInt32 = 0) -> kvm_cpuid_entry2? {
            cpuid.first { $0.function == function && $0.index == index }
        }
        let l7 = leaf(7)
        hasTSCAux = (leaf(0x8000_0001)?.edx ?? 0) & (1 << 27) != 0 || (l7?.ecx ?? 0) & (1 << 22) != 0
        hasSpecCtrl = (l7?.edx ?? 0) & (1 << 26) != 0 || (leaf(0x8000_0008)?.ebx ?? 0) & (1 << 14) != 0
        xsave = XSaveLayout(cpuid: cpuid, imageSize: xsaveImageSize)
    }

    /// x87 and SSE only, no optional MSRs: what is left when the CPUID cannot be read.
    public static let baseline = GuestRegisterSupport(xsave: XSaveLayout(components: [:]), hasTSCAux: false,
                                                      hasSpecCtrl: false)
}

/// The architectural state a vCPU starts in, in plain Swift: the boot protocols produce it
/// (no KVM involved, so it is unit-testable) and `VCPU` maps it onto kvm_regs/kvm_sregs.

/// A segment register's visible selector and hidden descriptor cache (kvm_segment).
public struct Segment: Equatable, Sendable {
    public var selector: UInt16
    public var base: UInt64
    public var limit: UInt32
    /// Descriptor type nibble: 0xB = execute/read code (accessed), 0x3 = read/write data (accessed).
    public var type: UInt8
    public var present: Bool
    public var dpl: UInt8
    /// Default operation size 32-bit (D/B).
    public var db: Bool
    /// Code or data (as opposed to system) descriptor.
    public var s: Bool
    /// 64-bit code segment.
    public var l: Bool
    /// Limit in 4 KiB units.
    public var g: Bool

    public init(selector: UInt16, base: UInt64, limit: UInt32, type: UInt8, present: Bool,
                dpl: UInt8, db: Bool, s: Bool, l: Bool, g: Bool) {
        self.selector = selector; self.base = base; self.limit = limit; self.type = type
        self.present = present; self.dpl = dpl; self.db = db; self.s = s; self.l = l; self.g = g
    }

    /// Flat 4 GiB ring-0 code segment; `long` selects 64-bit mode (L=1, D=0).
    public static func flatCode(selector: UInt16, long: Bool) -> Segment {
        Segment(selector: selector, base: 0, limit: 0xFFFF_FFFF, type: 0xB, present: true,
                dpl: 0, db: !long, s: true, l: long, g: true)
    }

    /// Flat 4 GiB ring-0 read/write data segment.
    public static func flatData(selector: UInt16) -> Segment {
        Segment(selector: selector, base: 0, limit: 0xFFFF_FFFF, type: 0x3, present: true,
                dpl: 0, db: true, s: true, l: false, g: true)
    }
}

/// A descriptor-table register (GDTR/IDTR).
public struct DescriptorTable: Equatable, Sendable {
    public var base: UInt64
    public var limit: UInt16
    public init(base: UInt64, limit: UInt16) { self.base = base; self.limit = limit }
}

public struct EntryState: Equatable, Sendable {
    public var rip: UInt64 = 0
    public var rsp: UInt64 = 0
    public var rflags: UInt64 = 0x2
    public var rax: UInt64 = 0
    public var rbx: UInt64 = 0
    public var rdi: UInt64 = 0
    public var rsi: UInt64 = 0
    public var cr0: UInt64 = 0
    public var cr3: UInt64 = 0
    public var cr4: UInt64 = 0
    public var efer: UInt64 = 0
    public var cs: Segment
    public var ds: Segment
    public var es: Segment
    public var fs: Segment
    public var gs: Segment
    public var ss: Segment
    public var gdt: DescriptorTable
    public var idt: DescriptorTable

    public init(cs: Segment, data: Segment, gdt: DescriptorTable) {
        self.cs = cs
        ds = data; es = data; fs = data; gs = data; ss = data
        self.gdt = gdt
        idt = DescriptorTable(base: 0, limit: 0)
    }
}

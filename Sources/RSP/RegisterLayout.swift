// The register layouts gdb sees, one per TargetArchitecture, each the same in every CPU mode.
// Register numbers are the index into `RegisterLayout.registers`; the `g` packet is their
// concatenation in that order; target.xml is generated from the same table, so the three can never
// disagree. Each register names the X86_64Registers field it shows (its slot), so the i386 layout
// is a projection of the same register file: eax is the low half of gpr[0], and so on.

/// The target.xml feature a register belongs to.
enum RegisterFeature: String, CaseIterable, Sendable {
    case core = "org.gnu.gdb.i386.core"
    case sse = "org.gnu.gdb.i386.sse"
    case segments = "org.gnu.gdb.i386.segments"
    /// gdb knows no standard feature for control registers; it shows unknown features' registers
    /// as they are. This is the name other x86 system-level stubs use.
    case system = "org.gnu.gdb.i386.sys"
}

/// Where a register's value lives in X86_64Registers.
enum RegisterSlot: Sendable, Equatable {
    /// An index into `gpr`, which is in amd64 order (rax rbx rcx rdx rsi rdi rbp rsp r8...).
    case gpr(Int)
    case rip, eflags
    case segment(Int), st(Int), x87Control(Int), xmm(Int)
    case mxcsr, fsBase, gsBase, kernelGsBase, cr0, cr2, cr3, cr4, cr8, efer
}

struct RegisterInfo: Sendable {
    var name: String
    var bitSize: Int
    /// A target.xml type: a predefined one (int64, code_ptr, i387_ext...) or one TargetDescription
    /// defines (i386_eflags, vec128, i386_cr0...).
    var type: String
    var group: String?
    var feature: RegisterFeature
    var slot: RegisterSlot

    var byteCount: Int { bitSize / 8 }
}

struct RegisterLayout: Sendable {
    let architecture: TargetArchitecture
    let registers: [RegisterInfo]
    /// Byte offset of each register in the `g` packet's raw data, plus the total at the end.
    let offsets: [Int]
    /// The program counter, stack pointer and frame pointer: expedited in stop replies.
    let pc: Int
    let sp: Int
    let fp: Int

    /// Bytes in a full `g` reply (before hex encoding).
    var totalByteCount: Int { offsets[registers.count] }

    static func of(_ architecture: TargetArchitecture) -> RegisterLayout {
        switch architecture {
        case .x86_64: x86_64
        case .i386: i386
        }
    }

    private init(_ architecture: TargetArchitecture, _ registers: [RegisterInfo]) {
        self.architecture = architecture
        self.registers = registers
        offsets = registers.reduce(into: [0]) { $0.append($0[$0.count - 1] + $1.byteCount) }
        func number(of slot: RegisterSlot) -> Int {
            guard let n = registers.firstIndex(where: { $0.slot == slot }) else {
                fatalError("register layout without \(slot)")
            }
            return n
        }
        pc = number(of: .rip)
        sp = number(of: .gpr(7))
        fp = number(of: .gpr(6))
    }

    /// gdb's amd64 layout (features/i386/64bit-*.xml) plus the long-mode system registers:
    /// 0-15 rax..r15, 16 rip, 17 eflags, 18-23 cs..gs, 24-31 st0-7, 32-39 fctrl..fop,
    /// 40-55 xmm0-15, 56 mxcsr, 57 fs_base, 58 gs_base, 59 k_gs_base, 60-64 cr0 cr2 cr3 cr4 cr8,
    /// 65 efer.
    static let x86_64: RegisterLayout = {
        var r: [RegisterInfo] = []
        func add(_ name: String, _ bits: Int, _ type: String, group: String? = nil, _ feature: RegisterFeature,
                 _ slot: RegisterSlot) {
            r.append(RegisterInfo(name: name, bitSize: bits, type: type, group: group, feature: feature, slot: slot))
        }
        for (i, name) in ["rax", "rbx", "rcx", "rdx", "rsi", "rdi"].enumerated() { add(name, 64, "int64", .core, .gpr(i)) }
        add("rbp", 64, "data_ptr", .core, .gpr(6))
        add("rsp", 64, "data_ptr", .core, .gpr(7))
        for i in 8...15 { add("r\(i)", 64, "int64", .core, .gpr(i)) }
        add("rip", 64, "code_ptr", .core, .rip)
        add("eflags", 32, "i386_eflags", .core, .eflags)
        for (i, name) in segmentNames.enumerated() { add(name, 32, "int32", .core, .segment(i)) }
        for i in 0...7 { add("st\(i)", 80, "i387_ext", .core, .st(i)) }
        for (i, name) in x87ControlNames.enumerated() { add(name, 32, "int", group: "float", .core, .x87Control(i)) }
        for i in 0...15 { add("xmm\(i)", 128, "vec128", .sse, .xmm(i)) }
        add("mxcsr", 32, "i386_mxcsr", group: "vector", .sse, .mxcsr)
        add("fs_base", 64, "int", .segments, .fsBase)
        add("gs_base", 64, "int", .segments, .gsBase)
        add("k_gs_base", 64, "int", group: "system", .system, .kernelGsBase)
        add("cr0", 64, "i386_cr0", group: "system", .system, .cr0)
        add("cr2", 64, "int64", group: "system", .system, .cr2)
        add("cr3", 64, "int64", group: "system", .system, .cr3)
        add("cr4", 64, "i386_cr4", group: "system", .system, .cr4)
        add("cr8", 64, "int64", group: "system", .system, .cr8)
        add("efer", 64, "i386_efer", group: "system", .system, .efer)
        return RegisterLayout(.x86_64, r)
    }()

    /// gdb's i386 layout (features/i386/32bit-core.xml, 32bit-sse.xml) plus the 32-bit segment
    /// bases and system registers, as qemu-system-i386 has them: 0-7 eax ecx edx ebx esp ebp esi
    /// edi, 8 eip, 9 eflags, 10-15 cs..gs, 16-23 st0-7, 24-31 fctrl..fop, 32-39 xmm0-7, 40 mxcsr,
    /// 41 fs_base, 42 gs_base, 43-46 cr0 cr2 cr3 cr4, 47 efer. k_gs_base and cr8 exist only in
    /// long mode and are left out.
    static let i386: RegisterLayout = {
        var r: [RegisterInfo] = []
        func add(_ name: String, _ bits: Int, _ type: String, group: String? = nil, _ feature: RegisterFeature,
                 _ slot: RegisterSlot) {
            r.append(RegisterInfo(name: name, bitSize: bits, type: type, group: group, feature: feature, slot: slot))
        }
        // i386 numbers the registers in encoding order; gpr is in amd64 order.
        add("eax", 32, "int32", .core, .gpr(0))
        add("ecx", 32, "int32", .core, .gpr(2))
        add("edx", 32, "int32", .core, .gpr(3))
        add("ebx", 32, "int32", .core, .gpr(1))
        add("esp", 32, "data_ptr", .core, .gpr(7))
        add("ebp", 32, "data_ptr", .core, .gpr(6))
        add("esi", 32, "int32", .core, .gpr(4))
        add("edi", 32, "int32", .core, .gpr(5))
        add("eip", 32, "code_ptr", .core, .rip)
        add("eflags", 32, "i386_eflags", .core, .eflags)
        for (i, name) in segmentNames.enumerated() { add(name, 32, "int32", .core, .segment(i)) }
        for i in 0...7 { add("st\(i)", 80, "i387_ext", .core, .st(i)) }
        for (i, name) in x87ControlNames.enumerated() { add(name, 32, "int", group: "float", .core, .x87Control(i)) }
        for i in 0...7 { add("xmm\(i)", 128, "vec128", .sse, .xmm(i)) }
        add("mxcsr", 32, "i386_mxcsr", group: "vector", .sse, .mxcsr)
        // Not in org.gnu.gdb.i386.segments: gdb 13 with the GNU/Linux OS ABI (its default on a Linux
        // host, and what it picks for a kernel ELF without an ABI note) numbers gs_base past the
        // end of its i386-linux register file and dies on an internal error. In a feature gdb
        // does not know they are plain registers, as in qemu-system-i386.
        add("fs_base", 32, "int", .system, .fsBase)
        add("gs_base", 32, "int", .system, .gsBase)
        add("cr0", 32, "i386_cr0", group: "system", .system, .cr0)
        add("cr2", 32, "int32", group: "system", .system, .cr2)
        add("cr3", 32, "int32", group: "system", .system, .cr3)
        add("cr4", 32, "i386_cr4", group: "system", .system, .cr4)
        add("efer", 32, "i386_efer", group: "system", .system, .efer)
        return RegisterLayout(.i386, r)
    }()

    private static let segmentNames = ["cs", "ss", "ds", "es", "fs", "gs"]
    private static let x87ControlNames = ["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"]
}

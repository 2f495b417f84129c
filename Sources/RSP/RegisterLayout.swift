// The one x86-64 register layout gdb sees in every CPU mode. Register numbers are the index into
// `RegisterLayout.registers`; the `g` packet is their concatenation in that order; target.xml is
// generated from the same table, so the three can never disagree.

/// The target.xml feature a register belongs to.
enum RegisterFeature: String, CaseIterable, Sendable {
    case core = "org.gnu.gdb.i386.core"
    case sse = "org.gnu.gdb.i386.sse"
    case segments = "org.gnu.gdb.i386.segments"
    /// gdb knows no standard feature for control registers; it shows unknown features' registers
    /// as they are. This is the name other x86 system-level stubs use.
    case system = "org.gnu.gdb.i386.sys"
}

struct RegisterInfo: Sendable {
    var name: String
    var bitSize: Int
    /// A target.xml type: a predefined one (int64, code_ptr, i387_ext...) or one TargetDescription
    /// defines (i386_eflags, vec128, i386_cr0...).
    var type: String
    var group: String?
    var feature: RegisterFeature

    var byteCount: Int { bitSize / 8 }
}

enum RegisterLayout {
    static let rip = 16
    static let rsp = 7
    static let rbp = 6

    static let registers: [RegisterInfo] = {
        var r: [RegisterInfo] = []
        func add(_ name: String, _ bits: Int, _ type: String, group: String? = nil, _ feature: RegisterFeature) {
            r.append(RegisterInfo(name: name, bitSize: bits, type: type, group: group, feature: feature))
        }
        for name in ["rax", "rbx", "rcx", "rdx", "rsi", "rdi"] { add(name, 64, "int64", .core) }
        add("rbp", 64, "data_ptr", .core)
        add("rsp", 64, "data_ptr", .core)
        for i in 8...15 { add("r\(i)", 64, "int64", .core) }
        add("rip", 64, "code_ptr", .core)
        add("eflags", 32, "i386_eflags", .core)
        for name in ["cs", "ss", "ds", "es", "fs", "gs"] { add(name, 32, "int32", .core) }
        for i in 0...7 { add("st\(i)", 80, "i387_ext", .core) }
        for name in ["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"] {
            add(name, 32, "int", group: "float", .core)
        }
        for i in 0...15 { add("xmm\(i)", 128, "vec128", .sse) }
        add("mxcsr", 32, "i386_mxcsr", group: "vector", .sse)
        add("fs_base", 64, "int", .segments)
        add("gs_base", 64, "int", .segments)
        add("k_gs_base", 64, "int", group: "system", .system)
        add("cr0", 64, "i386_cr0", group: "system", .system)
        add("cr2", 64, "int64", group: "system", .system)
        add("cr3", 64, "int64", group: "system", .system)
        add("cr4", 64, "i386_cr4", group: "system", .system)
        add("cr8", 64, "int64", group: "system", .system)
        add("efer", 64, "i386_efer", group: "system", .system)
        return r
    }()

    /// Byte offset of each register in the `g` packet's raw data, plus the total at the end.
    static let offsets: [Int] = registers.reduce(into: [0]) { $0.append($0[$0.count - 1] + $1.byteCount) }

    /// Bytes in a full `g` reply (before hex encoding).
    static var totalByteCount: Int { offsets[registers.count] }
}

// The register layouts gdb sees, one per TargetArchitecture and set of CPU extensions, each the
// same in every CPU mode. Register numbers are the index into `RegisterLayout.registers`; the `g`
// packet is the concatenation of the first `gPacketCount` of them in that order (the rest, which
// cost extra ioctls, gdb fetches one by one with `p` when it shows them); target.xml is generated
// from the same table, so the three can never disagree. Each register names the X86_64Registers
// field it shows (its slot), so the i386 layout is a projection of the same register file: eax is
// the low half of gpr[0], and so on.

/// The target.xml feature a register belongs to. gdb knows core, sse, segments, avx, avx512 and
/// pkeys (and checks their register names); the others it shows as they are.
enum RegisterFeature: String, CaseIterable, Sendable {
    case core = "org.gnu.gdb.i386.core"
    case sse = "org.gnu.gdb.i386.sse"
    case segments = "org.gnu.gdb.i386.segments"
    /// Control and descriptor-table registers. gdb knows no standard feature for them; this is
    /// the name other x86 system-level stubs use.
    case system = "org.gnu.gdb.i386.sys"
    case avx = "org.gnu.gdb.i386.avx"
    case avx512 = "org.gnu.gdb.i386.avx512"
    case pkeys = "org.gnu.gdb.i386.pkeys"
    /// Model-specific registers (KVM_GET_MSRS).
    case msr = "org.gnu.gdb.i386.sys.msr"
    /// The guest's debug registers (KVM_GET_DEBUGREGS).
    case debug = "org.gnu.gdb.i386.sys.debug"
}

/// The state a register read needs: a target fetches only the parts asked for (each costs an
/// ioctl, tens of microseconds on nested hosts).
public struct RegisterParts: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// General, segment, control and descriptor-table registers (kvm_regs, kvm_sregs).
    public static let general = RegisterParts(rawValue: 1)
    /// x87, SSE, AVX, AVX-512, PKRU: the XSAVE image.
    public static let vector = RegisterParts(rawValue: 2)
    /// Model-specific registers.
    public static let msrs = RegisterParts(rawValue: 4)
    /// dr0-dr3, dr6, dr7.
    public static let debug = RegisterParts(rawValue: 8)
    public static let all: RegisterParts = [.general, .vector, .msrs, .debug]
}

/// What the guest's CPU has beyond the registers every x86-64 CPU has, taken from its CPUID once
/// (the register set then stays the same whatever the guest does).
public struct RegisterExtensions: Sendable, Hashable {
    /// XSAVE state component 2 (YMM_Hi128): ymm0h-15h, so gdb shows ymm0-15.
    public var avx: Bool
    /// Components 5-7 (opmask, ZMM_Hi256, Hi16_ZMM): k0-7, zmm0h-31h, xmm16-31, ymm16h-31h.
    public var avx512: Bool
    /// Component 9: pkru.
    public var pkeys: Bool
    /// IA32_TSC_AUX (RDTSCP or RDPID).
    public var tscAux: Bool
    /// IA32_SPEC_CTRL (Intel's SPEC_CTRL or AMD's IBRS/SSBD bits).
    public var specCtrl: Bool

    public init(avx: Bool = false, avx512: Bool = false, pkeys: Bool = false, tscAux: Bool = false,
                specCtrl: Bool = false) {
        self.avx = avx
        self.avx512 = avx512
        self.pkeys = pkeys
        self.tscAux = tscAux
        self.specCtrl = specCtrl
    }

    /// A CPU with none of them.
    public static let none = RegisterExtensions()

    /// The MSRs the x86-64 view shows (the i386 view shows a subset), in register order.
    public var msrs: [UInt32] {
        MSRInfo.table.filter { $0.isPresent(self) }.map(\.index)
    }
}

/// A model-specific register gdb is shown, by its Linux name (msr-index.h, lower case).
struct MSRInfo: Sendable {
    var name: String
    var index: UInt32
    /// The target.xml type in the x86-64 view (64-bit registers in both views).
    var type: String
    /// Only long mode uses it; the i386 view leaves it out (as it leaves out r8-r15).
    var longModeOnly = false
    var requires: RequiredExtension = .none

    enum RequiredExtension: Sendable { case none, tscAux, specCtrl }

    func isPresent(_ extensions: RegisterExtensions) -> Bool {
        switch requires {
        case .none: true
        case .tscAux: extensions.tscAux
        case .specCtrl: extensions.specCtrl
        }
    }

    static let kernelGSBase: UInt32 = 0xC000_0102

    static let table: [MSRInfo] = [
        MSRInfo(name: "k_gs_base", index: kernelGSBase, type: "int", longModeOnly: true),
        MSRInfo(name: "sysenter_cs", index: 0x174, type: "int64"),
        MSRInfo(name: "sysenter_esp", index: 0x175, type: "data_ptr"),
        MSRInfo(name: "sysenter_eip", index: 0x176, type: "code_ptr"),
        MSRInfo(name: "star", index: 0xC000_0081, type: "int64"),
        MSRInfo(name: "lstar", index: 0xC000_0082, type: "code_ptr", longModeOnly: true),
        MSRInfo(name: "cstar", index: 0xC000_0083, type: "code_ptr", longModeOnly: true),
        MSRInfo(name: "fmask", index: 0xC000_0084, type: "int64", longModeOnly: true),
        MSRInfo(name: "tsc", index: 0x10, type: "uint64"),
        MSRInfo(name: "tsc_aux", index: 0xC000_0103, type: "int64", requires: .tscAux),
        MSRInfo(name: "apic_base", index: 0x1B, type: "int64"),
        MSRInfo(name: "pat", index: 0x277, type: "int64"),
        MSRInfo(name: "spec_ctrl", index: 0x48, type: "int64", requires: .specCtrl),
    ]
}

/// Where a register's value lives in X86_64Registers.
enum RegisterSlot: Sendable, Equatable {
    /// An index into `gpr`, which is in amd64 order (rax rbx rcx rdx rsi rdi rbp rsp r8...).
    case gpr(Int)
    case rip, eflags
    case segment(Int), st(Int), x87Control(Int), xmm(Int)
    case mxcsr, fsBase, gsBase, kernelGsBase, cr0, cr2, cr3, cr4, cr8, efer
    case ymmh(Int), zmmh(Int), opmask(Int), pkru
    case gdtrBase, gdtrLimit, idtrBase, idtrLimit
    case ldtr, ldtrBase, ldtrLimit, tr, trBase, trLimit
    case msr(UInt32)
    /// An index into `debugRegisters`: dr0-dr3, dr6, dr7.
    case debug(Int)

    /// The state this register is read from.
    var part: RegisterParts {
        switch self {
        case .st, .x87Control, .xmm, .mxcsr, .ymmh, .zmmh, .opmask, .pkru: .vector
        case .kernelGsBase, .msr: .msrs
        case .debug: .debug
        default: .general
        }
    }
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
    /// For LLDB: the register's role (pc, sp, fp, flags) and its DWARF/eh_frame number.
    var generic: String? = nil
    var dwarf: Int? = nil

    var byteCount: Int { bitSize / 8 }
}

struct RegisterLayout: Sendable {
    let architecture: TargetArchitecture
    let extensions: RegisterExtensions
    let registers: [RegisterInfo]
    /// Byte offset of each register in the raw register data, plus the total at the end; the
    /// `g` packet is the first `gPacketByteCount` bytes.
    let offsets: [Int]
    /// The registers the `g` packet holds: those read from kvm_regs, kvm_sregs and the XSAVE
    /// image, which a stop fetches anyway. MSRs and debug registers follow, fetched with `p`.
    let gPacketCount: Int
    /// The program counter, stack pointer and frame pointer: expedited in stop replies.
    let pc: Int
    let sp: Int
    let fp: Int

    /// Bytes of every register (before hex encoding).
    var totalByteCount: Int { offsets[registers.count] }
    /// Bytes in a full `g` reply (before hex encoding).
    var gPacketByteCount: Int { offsets[gPacketCount] }

    /// The state the `g` packet needs.
    var gPacketParts: RegisterParts {
        registers[..<gPacketCount].reduce(into: []) { $0.formUnion($1.slot.part) }
    }

    static func of(_ architecture: TargetArchitecture, extensions: RegisterExtensions = .none) -> RegisterLayout {
        switch (architecture, extensions == .none) {
        case (.x86_64, true): x86_64
        case (.i386, true): i386
        case (.x86_64, false): build64(extensions)
        case (.i386, false): build32(extensions)
        }
    }

    private init(_ architecture: TargetArchitecture, _ extensions: RegisterExtensions, _ registers: [RegisterInfo]) {
        self.architecture = architecture
        self.extensions = extensions
        // gdb on x86 ignores target.xml groups (i386_register_reggroup_p decides, and puts every
        // register it does not know in `general`); LLDB makes its register sets from them, so
        // every register gets one.
        let registers = registers.map { reg in
            var reg = reg
            if reg.group == nil {
                switch reg.slot {
                case .st: reg.group = "float"
                case .xmm, .ymmh, .zmmh, .opmask: reg.group = "vector"
                case .pkru: reg.group = "system"
                default: reg.group = "general"
                }
            }
            return reg
        }
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
        let lazy: RegisterParts = [.msrs, .debug]
        gPacketCount = registers.firstIndex { !$0.slot.part.isDisjoint(with: lazy) } ?? registers.count
        precondition(registers[gPacketCount...].allSatisfy { !$0.slot.part.isDisjoint(with: lazy) },
                     "every register after the g packet is an MSR or a debug register")
    }

    static let x86_64 = build64(.none)
    static let i386 = build32(.none)

    /// gdb's amd64 layout (features/i386/64bit-*.xml) plus the long-mode system registers:
    /// 0-15 rax..r15, 16 rip, 17 eflags, 18-23 cs..gs, 24-31 st0-7, 32-39 fctrl..fop,
    /// 40-55 xmm0-15, 56 mxcsr, 57 fs_base, 58 gs_base, 59-64 cr0 cr2 cr3 cr4 cr8 efer,
    /// 65-74 gdtr_base gdtr_limit idtr_base idtr_limit ldtr ldtr_base ldtr_limit tr tr_base
    /// tr_limit; then, with the extensions: ymm0h-15h; xmm16-31 ymm16h-31h k0-7 zmm0h-31h; pkru.
    /// The `g` packet ends there. Then the MSRs (k_gs_base first) and dr0-3 dr6 dr7.
    private static func build64(_ x: RegisterExtensions) -> RegisterLayout {
        var r: [RegisterInfo] = []
        func add(_ name: String, _ bits: Int, _ type: String, group: String? = nil, _ feature: RegisterFeature,
                 _ slot: RegisterSlot, generic: String? = nil, dwarf: Int? = nil) {
            r.append(RegisterInfo(name: name, bitSize: bits, type: type, group: group, feature: feature, slot: slot,
                                  generic: generic, dwarf: dwarf))
        }
        // DWARF numbers (System V AMD64 ABI): rax rdx rcx rbx rsi rdi rbp rsp r8-r15 rip.
        let dwarfGPR = [0, 3, 2, 1, 4, 5]
        for (i, name) in ["rax", "rbx", "rcx", "rdx", "rsi", "rdi"].enumerated() {
            add(name, 64, "int64", .core, .gpr(i), dwarf: dwarfGPR[i])
        }
        add("rbp", 64, "data_ptr", .core, .gpr(6), generic: "fp", dwarf: 6)
        add("rsp", 64, "data_ptr", .core, .gpr(7), generic: "sp", dwarf: 7)
        for i in 8...15 { add("r\(i)", 64, "int64", .core, .gpr(i), dwarf: i) }
        add("rip", 64, "code_ptr", .core, .rip, generic: "pc", dwarf: 16)
        add("eflags", 32, "i386_eflags", .core, .eflags, generic: "flags", dwarf: 49)
        // DWARF: es 50, cs 51, ss 52, ds 53, fs 54, gs 55.
        for (i, name) in segmentNames.enumerated() { add(name, 32, "int32", .core, .segment(i), dwarf: [51, 52, 53, 50, 54, 55][i]) }
        for i in 0...7 { add("st\(i)", 80, "i387_ext", .core, .st(i), dwarf: 33 + i) }
        for (i, name) in x87ControlNames.enumerated() { add(name, 32, "int", group: "float", .core, .x87Control(i)) }
        for i in 0...15 { add("xmm\(i)", 128, "vec128", .sse, .xmm(i), dwarf: 17 + i) }
        add("mxcsr", 32, "i386_mxcsr", group: "vector", .sse, .mxcsr, dwarf: 64)
        add("fs_base", 64, "int", .segments, .fsBase, dwarf: 58)
        add("gs_base", 64, "int", .segments, .gsBase, dwarf: 59)
        add("cr0", 64, "i386_cr0", group: "system", .system, .cr0)
        add("cr2", 64, "int64", group: "system", .system, .cr2)
        add("cr3", 64, "int64", group: "system", .system, .cr3)
        add("cr4", 64, "i386_cr4", group: "system", .system, .cr4)
        add("cr8", 64, "int64", group: "system", .system, .cr8)
        add("efer", 64, "i386_efer", group: "system", .system, .efer)
        addDescriptorTables(64) { add($0, $1, $2, group: "system", .system, $3) }
        if x.avx { for i in 0...15 { add("ymm\(i)h", 128, "uint128", .avx, .ymmh(i)) } }
        if x.avx512 {
            for i in 16...31 { add("xmm\(i)", 128, "vec128", .avx512, .xmm(i)) }
            for i in 16...31 { add("ymm\(i)h", 128, "uint128", .avx512, .ymmh(i)) }
            for i in 0...7 { add("k\(i)", 64, "uint64", .avx512, .opmask(i)) }
            for i in 0...31 { add("zmm\(i)h", 256, "v2ui128", .avx512, .zmmh(i)) }
        }
        if x.pkeys { add("pkru", 32, "uint32", .pkeys, .pkru) }
        for msr in MSRInfo.table where msr.isPresent(x) {
            add(msr.name, 64, msr.type, group: "system", .msr,
                msr.index == MSRInfo.kernelGSBase ? .kernelGsBase : .msr(msr.index))
        }
        addDebugRegisters(64) { add($0, $1, $2, group: "system", .debug, $3) }
        return RegisterLayout(.x86_64, x, r)
    }

    /// gdb's i386 layout (features/i386/32bit-core.xml, 32bit-sse.xml) plus the 32-bit segment
    /// bases and system registers, as qemu-system-i386 has them: 0-7 eax ecx edx ebx esp ebp esi
    /// edi, 8 eip, 9 eflags, 10-15 cs..gs, 16-23 st0-7, 24-31 fctrl..fop, 32-39 xmm0-7, 40 mxcsr,
    /// 41 fs_base, 42 gs_base, 43-46 cr0 cr2 cr3 cr4, 47 efer, 48-57 the descriptor tables; with
    /// the extensions ymm0h-7h, k0-7 zmm0h-7h (gdb's 32bit-avx512.xml), pkru; then the MSRs
    /// that are not long-mode only (64-bit, as the CPU has them) and dr0-3 dr6 dr7.
    /// k_gs_base, lstar, cstar, fmask and cr8 exist only in long mode and are left out.
    private static func build32(_ x: RegisterExtensions) -> RegisterLayout {
        var r: [RegisterInfo] = []
        func add(_ name: String, _ bits: Int, _ type: String, group: String? = nil, _ feature: RegisterFeature,
                 _ slot: RegisterSlot, generic: String? = nil, dwarf: Int? = nil) {
            r.append(RegisterInfo(name: name, bitSize: bits, type: type, group: group, feature: feature, slot: slot,
                                  generic: generic, dwarf: dwarf))
        }
        // i386 numbers the registers in encoding order (so does DWARF); gpr is in amd64 order.
        add("eax", 32, "int32", .core, .gpr(0), dwarf: 0)
        add("ecx", 32, "int32", .core, .gpr(2), dwarf: 1)
        add("edx", 32, "int32", .core, .gpr(3), dwarf: 2)
        add("ebx", 32, "int32", .core, .gpr(1), dwarf: 3)
        add("esp", 32, "data_ptr", .core, .gpr(7), generic: "sp", dwarf: 4)
        add("ebp", 32, "data_ptr", .core, .gpr(6), generic: "fp", dwarf: 5)
        add("esi", 32, "int32", .core, .gpr(4), dwarf: 6)
        add("edi", 32, "int32", .core, .gpr(5), dwarf: 7)
        add("eip", 32, "code_ptr", .core, .rip, generic: "pc", dwarf: 8)
        add("eflags", 32, "i386_eflags", .core, .eflags, generic: "flags", dwarf: 9)
        for (i, name) in segmentNames.enumerated() { add(name, 32, "int32", .core, .segment(i)) }
        for i in 0...7 { add("st\(i)", 80, "i387_ext", .core, .st(i), dwarf: 11 + i) }
        for (i, name) in x87ControlNames.enumerated() { add(name, 32, "int", group: "float", .core, .x87Control(i)) }
        for i in 0...7 { add("xmm\(i)", 128, "vec128", .sse, .xmm(i), dwarf: 21 + i) }
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
        addDescriptorTables(32) { add($0, $1, $2, group: "system", .system, $3) }
        if x.avx { for i in 0...7 { add("ymm\(i)h", 128, "uint128", .avx, .ymmh(i)) } }
        if x.avx512 {
            for i in 0...7 { add("k\(i)", 64, "uint64", .avx512, .opmask(i)) }
            for i in 0...7 { add("zmm\(i)h", 256, "v2ui128", .avx512, .zmmh(i)) }
        }
        if x.pkeys { add("pkru", 32, "uint32", .pkeys, .pkru) }
        for msr in MSRInfo.table where msr.isPresent(x) && !msr.longModeOnly {
            // Pointer types are as wide as the architecture's pointers: MSRs stay 64-bit integers.
            add(msr.name, 64, msr.type == "uint64" ? "uint64" : "int64", group: "system", .msr, .msr(msr.index))
        }
        addDebugRegisters(32) { add($0, $1, $2, group: "system", .debug, $3) }
        return RegisterLayout(.i386, x, r)
    }

    /// gdtr_base gdtr_limit idtr_base idtr_limit ldtr ldtr_base ldtr_limit tr tr_base tr_limit.
    private static func addDescriptorTables(_ bits: Int, _ add: (String, Int, String, RegisterSlot) -> Void) {
        add("gdtr_base", bits, "data_ptr", .gdtrBase)
        add("gdtr_limit", 32, "int32", .gdtrLimit)
        add("idtr_base", bits, "data_ptr", .idtrBase)
        add("idtr_limit", 32, "int32", .idtrLimit)
        add("ldtr", 32, "int32", .ldtr)
        add("ldtr_base", bits, "data_ptr", .ldtrBase)
        add("ldtr_limit", 32, "int32", .ldtrLimit)
        add("tr", 32, "int32", .tr)
        add("tr_base", bits, "data_ptr", .trBase)
        add("tr_limit", 32, "int32", .trLimit)
    }

    /// dr0-dr3 (addresses), dr6, dr7.
    private static func addDebugRegisters(_ bits: Int, _ add: (String, Int, String, RegisterSlot) -> Void) {
        for i in 0...3 { add("dr\(i)", bits, "data_ptr", .debug(i)) }
        add("dr6", bits, bits == 64 ? "uint64" : "uint32", .debug(4))
        add("dr7", bits, bits == 64 ? "uint64" : "uint32", .debug(5))
    }

    private static let segmentNames = ["cs", "ss", "ds", "es", "fs", "gs"]
    private static let x87ControlNames = ["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"]
}

import CKVM
import Foundation

/// `monitor info registers` in QEMU's text (target/i386/cpu-dump.c, x86_cpu_dump_state with
/// CPU_DUMP_FPU), from the state KVM gives, converted as QEMU's KVM code converts it. pwndbg
/// reads `GDT=`/`IDT=` (base and limit) out of it.
struct QEMURegisterDump {
    var regs: kvm_regs
    var sregs: kvm_sregs
    var debug: kvm_debugregs
    var events: kvm_vcpu_events
    var halted: Bool
    /// The XSAVE image (legacy FXSAVE area first, then the header at 512, YMM_Hi128 at 576).
    var xsave: [UInt8]
    var index: Int

    static let lma: UInt64 = 1 << 10

    var longMode: Bool { sregs.efer & QEMURegisterDump.lma != 0 }
    /// QEMU's HF_CS64: long mode with a 64-bit code segment.
    var cs64: Bool { longMode && sregs.cs.l != 0 }

    /// QEMU's SegmentCache flags from a kvm_segment (target/i386/kvm/kvm.c get_seg).
    static func flags(_ s: kvm_segment) -> UInt32 {
        UInt32(s.type) << 8 | (s.present != 0 && s.unusable == 0 ? 1 << 15 : 0) | UInt32(s.dpl) << 13
            | UInt32(s.db) << 22 | UInt32(s.s) << 12 | UInt32(s.l) << 21 | UInt32(s.g) << 23 | UInt32(s.avl) << 20
    }

    func text() -> String {
        var t = "CPU#\(index)\n"
        let r = regs
        let eflags = UInt32(truncatingIfNeeded: r.rflags)
        let flagText = "[" + [(0x400, "D"), (0x800, "O"), (0x80, "S"), (0x40, "Z"), (0x10, "A"), (0x4, "P"), (0x1, "C")]
            .map { eflags & UInt32($0.0) != 0 ? $0.1 : "-" }.joined() + "]"
        let cpl = Int(sregs.ss.dpl) & 3
        let tail = " CPL=\(cpl) II=\(events.interrupt.shadow != 0 ? 1 : 0) A20=1 SMM=\(events.smi.smm != 0 ? 1 : 0) HLT=\(halted ? 1 : 0)\n"
        if cs64 {
            let rows: [[(String, UInt64)]] = [
                [("RAX", r.rax), ("RBX", r.rbx), ("RCX", r.rcx), ("RDX", r.rdx)],
                [("RSI", r.rsi), ("RDI", r.rdi), ("RBP", r.rbp), ("RSP", r.rsp)],
                [("R8 ", r.r8), ("R9 ", r.r9), ("R10", r.r10), ("R11", r.r11)],
                [("R12", r.r12), ("R13", r.r13), ("R14", r.r14), ("R15", r.r15)],
            ]
            for row in rows { t += row.map { "\($0.0)=\(x16($0.1))" }.joined(separator: " ") + "\n" }
            t += "RIP=\(x16(r.rip)) RFL=\(x8(UInt64(eflags))) \(flagText)" + tail
        } else {
            let rows: [[(String, UInt64)]] = [
                [("EAX", r.rax), ("EBX", r.rbx), ("ECX", r.rcx), ("EDX", r.rdx)],
                [("ESI", r.rsi), ("EDI", r.rdi), ("EBP", r.rbp), ("ESP", r.rsp)],
            ]
            for row in rows { t += row.map { "\($0.0)=\(x8($0.1 & 0xFFFF_FFFF))" }.joined(separator: " ") + "\n" }
            t += "EIP=\(x8(r.rip & 0xFFFF_FFFF)) EFL=\(x8(UInt64(eflags))) \(flagText)" + tail
        }
        for (name, seg) in [("ES", sregs.es), ("CS", sregs.cs), ("SS", sregs.ss), ("DS", sregs.ds), ("FS", sregs.fs),
                            ("GS", sregs.gs), ("LDT", sregs.ldt), ("TR", sregs.tr)] {
            t += segment(name, seg)
        }
        if longMode {
            t += "GDT=     \(x16(sregs.gdt.base)) \(x8(UInt64(sregs.gdt.limit)))\n"
            t += "IDT=     \(x16(sregs.idt.base)) \(x8(UInt64(sregs.idt.limit)))\n"
            t += "CR0=\(x8(sregs.cr0 & 0xFFFF_FFFF)) CR2=\(x16(sregs.cr2)) CR3=\(x16(sregs.cr3)) CR4=\(x8(sregs.cr4 & 0xFFFF_FFFF))\n"
        } else {
            t += "GDT=     \(x8(sregs.gdt.base & 0xFFFF_FFFF)) \(x8(UInt64(sregs.gdt.limit)))\n"
            t += "IDT=     \(x8(sregs.idt.base & 0xFFFF_FFFF)) \(x8(UInt64(sregs.idt.limit)))\n"
            t += "CR0=\(x8(sregs.cr0 & 0xFFFF_FFFF)) CR2=\(x8(sregs.cr2 & 0xFFFF_FFFF)) CR3=\(x8(sregs.cr3 & 0xFFFF_FFFF)) CR4=\(x8(sregs.cr4 & 0xFFFF_FFFF))\n"
        }
        // SAFETY: kvm_debugregs.db is four u64s; the loads stay within it.
        let dr = withUnsafeBytes(of: debug.db) { raw in (0..<4).map { raw.load(fromByteOffset: $0 * 8, as: UInt64.self) } }
        // qemu-system-x86_64 prints debug registers with 16 digits in every mode.
        for i in 0..<4 { t += "DR\(i)=\(x16(dr[i])) " }
        t += "\nDR6=\(x16(debug.dr6)) DR7=\(x16(debug.dr7))\n"
        t += "EFER=\(x16(sregs.efer))\n"
        t += fpu()
        return t
    }

    private func segment(_ name: String, _ s: kvm_segment) -> String {
        let flags = QEMURegisterDump.flags(s)
        var t = name.padding(toLength: 3, withPad: " ", startingAt: 0) + "=" + String(format: "%04x", s.selector) + " "
        t += cs64 ? x16(s.base) : x8(s.base & 0xFFFF_FFFF)
        t += " \(x8(UInt64(s.limit))) \(x8(UInt64(flags & 0x00FF_FF00)))"
        // Protected mode and a present segment: the decoded descriptor.
        guard sregs.cr0 & 1 != 0, flags & (1 << 15) != 0 else { return t + "\n" }
        t += " DPL=\(s.dpl) "
        if s.s != 0 {
            if s.type & 8 != 0 {
                t += s.l != 0 ? "CS64" : s.db != 0 ? "CS32" : "CS16"
                t += " [" + (s.type & 4 != 0 ? "C" : "-") + (s.type & 2 != 0 ? "R" : "-")
            } else {
                t += s.db != 0 || longMode ? "DS  " : "DS16"
                t += " [" + (s.type & 4 != 0 ? "E" : "-") + (s.type & 2 != 0 ? "W" : "-")
            }
            t += (s.type & 1 != 0 ? "A" : "-") + "]"
        } else {
            let names32 = ["Reserved", "TSS16-avl", "LDT", "TSS16-busy", "CallGate16", "TaskGate", "IntGate16", "TrapGate16",
                           "Reserved", "TSS32-avl", "Reserved", "TSS32-busy", "CallGate32", "Reserved", "IntGate32", "TrapGate32"]
            let names64 = ["<hiword>", "Reserved", "LDT", "Reserved", "Reserved", "Reserved", "Reserved", "Reserved",
                           "Reserved", "TSS64-avl", "Reserved", "TSS64-busy", "CallGate64", "Reserved", "IntGate64", "TrapGate64"]
            t += (longMode ? names64 : names32)[Int(s.type & 0xF)]
        }
        return t + "\n"
    }

    private func le(_ offset: Int, _ size: Int) -> UInt64 {
        guard offset + size <= xsave.count else { return 0 }
        var v: UInt64 = 0
        for i in 0..<size { v |= UInt64(xsave[offset + i]) << (8 * UInt64(i)) }
        return v
    }

    /// QEMU prints YMM lines when XCR0 enables AVX; KVM's XSAVE image says only whether AVX
    /// state is in use (XSTATE_BV bit 2), so that is what selects them here.
    private func fpu() -> String {
        let fcw = le(0, 2), fsw = le(2, 2), ftw = le(4, 1), mxcsr = le(24, 4)
        let top = (fsw >> 11) & 7
        var t = "FCW=\(String(format: "%04llx", fcw)) FSW=\(String(format: "%04llx", fsw)) [ST=\(top)] "
        t += "FTW=\(String(format: "%02llx", ftw)) MXCSR=\(x8(mxcsr))\n"
        for i in 0..<8 {
            t += "FPR\(i)=\(x16(le(32 + 16 * i, 8))) \(String(format: "%04llx", le(32 + 16 * i + 8, 2)))"
            t += i & 1 == 1 ? "\n" : " "
        }
        let count = cs64 ? 16 : 8
        if le(512, 8) & 4 != 0 && xsave.count >= 576 + 256 {
            for i in 0..<count {
                t += String(format: "YMM%02d=", i) + [le(576 + 16 * i + 8, 8), le(576 + 16 * i, 8),
                                                       le(160 + 16 * i + 8, 8), le(160 + 16 * i, 8)].map(x16).joined(separator: " ") + "\n"
            }
        } else {
            for i in 0..<count {
                t += String(format: "XMM%02d=", i) + x16(le(160 + 16 * i + 8, 8)) + " " + x16(le(160 + 16 * i, 8))
                t += i & 1 == 1 ? "\n" : " "
            }
        }
        return t
    }
}

private func x16(_ v: UInt64) -> String { String(format: "%016llx", v) }
private func x8(_ v: UInt64) -> String { String(format: "%08llx", v) }

import Foundation
import KVMRunLoop

/// What a guest crash prints to stderr: the vCPU registers, enough to find the faulting code
/// without gdb.
extension Controller {
    func reportCrash(_ crash: Crash, vcpu: Int) {
        var text = "gdbvmm: guest crashed on vCPU \(vcpu): \(crash)\n"
        if let state = try? machine.withVCPU(vcpu, { (v) throws(SystemError) in try CPUState(vcpu: v) }) {
            text += registerDump(state)
        }
        FileHandle.standardError.write(Data(text.utf8))
    }
}

func hex(_ value: UInt64, width: Int = 16) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, width - digits.count)) + digits
}

/// The vCPU registers a crash report shows: enough to find the faulting code without gdb.
func registerDump(_ s: CPUState) -> String {
    let r = s.regs
    let rows: [(String, UInt64)] = [
        ("rax", r.rax), ("rbx", r.rbx), ("rcx", r.rcx), ("rdx", r.rdx),
        ("rsi", r.rsi), ("rdi", r.rdi), ("rbp", r.rbp), ("rsp", r.rsp),
        ("r8", r.r8), ("r9", r.r9), ("r10", r.r10), ("r11", r.r11),
        ("r12", r.r12), ("r13", r.r13), ("r14", r.r14), ("r15", r.r15),
        ("rip", r.rip), ("rflags", r.rflags),
        ("cr0", s.sregs.cr0), ("cr2", s.sregs.cr2), ("cr3", s.sregs.cr3), ("cr4", s.sregs.cr4),
        ("efer", s.sregs.efer),
    ]
    var text = ""
    for (i, (name, value)) in rows.enumerated() {
        text += name.padding(toLength: 7, withPad: " ", startingAt: 0) + hex(value)
        text += i % 4 == 3 || i == rows.count - 1 ? "\n" : "   "
    }
    let cs = s.sregs.cs
    text += "cs     sel 0x\(String(cs.selector, radix: 16)) base \(hex(cs.base)) \(cs.l != 0 ? "64-bit" : cs.db != 0 ? "32-bit" : "16-bit")"
    text += "   gdt \(hex(s.sregs.gdt.base)) limit 0x\(String(s.sregs.gdt.limit, radix: 16))"
    text += "   idt \(hex(s.sregs.idt.base)) limit 0x\(String(s.sregs.idt.limit, radix: 16))\n"
    return text
}

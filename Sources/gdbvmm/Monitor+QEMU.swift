import CKVM
import Foundation
import KVMRunLoop

/// The monitor commands QEMU has, answered in QEMU's text (hmp and target/i386/monitor.c), for
/// the tools that parse it: pwndbg's kernel vmmap reads `info mem`, GEF's memory map falls back
/// to it, pwndbg reads GDT/IDT out of `info registers`.
extension Controller {
    /// QEMU's monitor remembers the last `xp` format and unit size (initially x and 4).
    struct DumpFormat {
        var format: Character = "x"
        var size = 4
    }

    func qemuInfoRegisters() -> String {
        let index = currentVCPU
        do {
            let dump = try machine.withVCPU(index) { (vcpu) throws(SystemError) -> QEMURegisterDump in
                QEMURegisterDump(regs: try vcpu.getRegs(), sregs: try vcpu.getSregs(), debug: try vcpu.getDebugRegs(),
                                 events: try vcpu.getVCPUEvents(),
                                 halted: Int32(try vcpu.getMPState()) == KVM_MP_STATE_HALTED,
                                 xsave: try vcpu.getXSave(), index: index)
            }
            return "\n" + dump.text()
        } catch {
            return "error reading vCPU \(index)'s registers: \(error)\n"
        }
    }

    func qemuInfoMem() -> String {
        guard let paging = machine.parkedRegisters(currentVCPU)?.paging else { return "No CPU available\n" }
        return QEMUPageTables.infoMem(paging: paging, memory: machine.ram)
    }

    func qemuInfoTLB() -> String {
        guard let paging = machine.parkedRegisters(currentVCPU)?.paging else { return "No CPU available\n" }
        return QEMUPageTables.infoTLB(paging: paging, memory: machine.ram)
    }

    /// QEMU's memory tree layout for gdbvmm's machine: guest RAM, the in-kernel interrupt
    /// controllers' MMIO pages where the VM has them, and the port I/O devices.
    func qemuInfoMtree() -> String {
        func range(_ start: UInt64, _ end: UInt64, _ kind: String, _ name: String, depth: Int) -> String {
            String(repeating: "  ", count: depth) + "\(hex16(start))-\(hex16(end)) (prio 0, \(kind)): \(name)\n"
        }
        var text = "address-space: memory\n"
        text += range(0, UInt64.max, "i/o", "system", depth: 1)
        text += range(0, machine.ram.size - 1, "ram", "ram", depth: 2)
        if machine.hasIRQChip {
            text += range(0xFEC0_0000, 0xFEC0_0FFF, "i/o", "kvm-ioapic", depth: 2)
            text += range(0xFEE0_0000, 0xFEEF_FFFF, "i/o", "kvm-apic-msi", depth: 2)
        }
        text += "\naddress-space: I/O\n"
        text += range(0, 0xFFFF, "i/o", "io", depth: 1)
        var ports = machine.portClaims.map { (UInt64($0.ports.lowerBound), UInt64($0.ports.upperBound), $0.device) }
        if machine.hasIRQChip {
            // KVM's in-kernel PIC and PIT answer these ports without leaving the kernel.
            ports += [(0x20, 0x21, "kvm-pic"), (0x40, 0x43, "kvm-pit"), (0xA0, 0xA1, "kvm-pic"), (0x4D0, 0x4D1, "kvm-elcr")]
        }
        for (start, end, name) in ports.sorted(by: { $0.0 < $1.0 }) { text += range(start, end, "i/o", name, depth: 2) }
        return text + "\n"
    }

    /// `gva2gpa ADDR`: through the current vCPU's page tables, whatever `phys` says.
    func qemuGva2gpa(_ args: [String]) -> String {
        let address: UInt64
        switch qemuExpression(args, command: "gva2gpa") {
        case .success(let value): address = value
        case .failure(let error): return error.text
        }
        guard let paging = machine.parkedRegisters(currentVCPU)?.paging else { return "No CPU available\n" }
        guard let t = PageWalker.translate(address, paging: paging, memory: machine.ram) else { return "Unmapped\n" }
        return "gpa: 0x\(String(t.physical, radix: 16))\n"
    }

    /// `xp /[count][format][size] ADDR` (formats x d u o c, sizes b h w g), as QEMU's
    /// memory_dump prints it: 8 bytes a line for bytes, 16 otherwise. gdbvmm also takes a count
    /// after the address (`xp ADDR N`), as its earlier `xp` did.
    func qemuXP(_ args: [String]) -> String {
        var rest = args
        var count = 1
        var format = dumpFormat.format
        var size = dumpFormat.size
        if let spec = rest.first, spec.hasPrefix("/") {
            rest.removeFirst()
            var chars = Substring(spec.dropFirst())
            let digits = chars.prefix(while: { $0.isASCII && $0.isNumber })
            if !digits.isEmpty { count = Int(digits.prefix(9)) ?? 1; chars = chars.dropFirst(digits.count) }
            var newSize: Int?
            var newFormat: Character?
            for c in chars {
                switch c {
                case "o", "d", "u", "x", "c": newFormat = c
                case "i": return "xp: the i format (disassembly) is not served by gdbvmm; use gdb's x/i with `monitor phys on`\n"
                case "b": newSize = 1
                case "h": newSize = 2
                case "w": newSize = 4
                case "g", "L": newSize = 8
                default: return qemuSyntaxError("invalid char in format: '\(c)'", command: "xp")
                }
            }
            format = newFormat ?? format
            size = newSize ?? size
            dumpFormat = DumpFormat(format: format, size: size)
        }
        // gdbvmm's own form, `xp ADDR N`: a count after the address.
        if rest.count == 2, let n = qemuNumber(rest[1]) {
            count = Int(clamping: n)
            rest.removeLast()
        }
        let address: UInt64
        switch qemuExpression(rest, command: "xp") {
        case .success(let value): address = value
        case .failure(let error): return error.text
        }
        count = min(max(count, 0), 65536)
        let width = format == "c" ? 1 : size
        let digits: Int
        switch format {
        case "o": digits = (size * 8 + 2) / 3
        case "d", "u": digits = (size * 8 * 10 + 32) / 33
        default: digits = size * 2
        }
        var text = ""
        var length = size * count
        let lineSize = size == 1 ? 8 : 16
        var cursor = address
        while length > 0 {
            text += hex16(cursor) + ":"
            let l = min(length, lineSize)
            guard let bytes = try? machine.ram.read(at: cursor, count: l) else {
                return text + " Cannot access memory\n"
            }
            var i = 0
            while i < l {
                var v: UInt64 = 0
                for b in 0..<min(width, l - i) { v |= UInt64(bytes[i + b]) << (8 * UInt64(b)) }
                text += " "
                switch format {
                case "o": text += pad(v == 0 ? "0" : "0" + String(v, radix: 8), digits)
                case "u": text += pad(String(v), digits)
                case "d": text += pad(String(Int64(bitPattern: v)), digits)
                case "c": text += qemuChar(UInt8(truncatingIfNeeded: v))
                default: text += "0x" + String(repeating: "0", count: max(0, digits - String(v, radix: 16).count)) + String(v, radix: 16)
                }
                i += width
            }
            text += "\n"
            cursor &+= UInt64(l)
            length -= l
        }
        return text
    }

    private func pad(_ s: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - s.count)) + s
    }

    /// QEMU's monitor_printc.
    private func qemuChar(_ c: UInt8) -> String {
        switch c {
        case UInt8(ascii: "'"): return "'\\''"
        case UInt8(ascii: "\\"): return "'\\\\'"
        case 10: return "'\\n'"
        case 13: return "'\\r'"
        case 32...126: return "'\(Character(UnicodeScalar(c)))'"
        default: return "'\\x" + String(format: "%02x", c) + "'"
        }
    }

    /// A number as QEMU's monitor reads one: 0x hex, 0 octal, or decimal.
    func qemuNumber(_ text: String) -> UInt64? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt64(text.dropFirst(2), radix: 16) }
        if text.count > 1, text.hasPrefix("0") { return UInt64(text.dropFirst(), radix: 8) }
        return UInt64(text)
    }

    struct MonitorError: Error {
        var text: String
    }

    /// An address argument as QEMU's monitor evaluates it: numbers (0x hex, 0 octal, decimal)
    /// and `$reg` of the current vCPU (QEMU's names: eax..edi, r8..r15, eflags, eip, pc, sp,
    /// fp, cs..gs, cs.base, cs.limit, ...) joined by + and -.
    func qemuExpression(_ words: [String], command: String) -> Result<UInt64, MonitorError> {
        let text = words.joined(separator: " ")
        var rest = Substring(text)
        func fail(_ message: String) -> Result<UInt64, MonitorError> { .failure(MonitorError(text: qemuSyntaxError(message, command: command))) }
        func skipSpaces() { rest = rest.drop(while: { $0 == " " }) }
        var total: UInt64 = 0
        var negate = false
        while true {
            skipSpaces()
            guard let c = rest.first else { return fail("unexpected end of expression") }
            var term: UInt64
            if c == "$" {
                let name = rest.dropFirst().prefix(while: { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." })
                rest = rest.dropFirst(1 + name.count)
                guard let value = monitorRegister(String(name)) else { return fail("unknown register") }
                term = value
            } else if c.isASCII, c.isNumber {
                var digits: Substring
                var radix = 10
                if rest.hasPrefix("0x") || rest.hasPrefix("0X"), let d = rest.dropFirst(2).first, d.isHexDigit {
                    digits = rest.dropFirst(2).prefix(while: { $0.isHexDigit })
                    rest = rest.dropFirst(2 + digits.count)
                    radix = 16
                } else if rest.hasPrefix("0") {
                    digits = rest.prefix(while: { ("0"..."7").contains($0) })
                    rest = rest.dropFirst(digits.count)
                    radix = 8
                } else {
                    digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
                    rest = rest.dropFirst(digits.count)
                }
                guard let value = UInt64(digits, radix: radix) else { return fail("number too large") }
                term = value
            } else {
                return fail("invalid char '\(c)' in expression")
            }
            if negate { term = 0 &- term }
            total &+= term
            skipSpaces()
            guard let op = rest.first else { return .success(total) }
            guard op == "+" || op == "-" else {
                return .failure(MonitorError(text: qemuSyntaxError("\(command): extraneous characters at the end of line", command: command)))
            }
            negate = op == "-"
            rest = rest.dropFirst()
        }
    }

    /// QEMU's monitor register names (target/i386/monitor.c monitor_defs) on the current vCPU.
    private func monitorRegister(_ name: String) -> UInt64? {
        guard let p = machine.parkedRegisters(currentVCPU) else { return nil }
        let r = p.regs, s = p.sregs
        let segments = [("cs", s.cs), ("ds", s.ds), ("es", s.es), ("ss", s.ss), ("fs", s.fs), ("gs", s.gs)]
        for (segment, value) in segments {
            if name == segment { return UInt64(value.selector) }
            if name == segment + ".base" { return value.base }
            if name == segment + ".limit" { return UInt64(value.limit) }
        }
        let values: [String: UInt64] = [
            "eax": r.rax, "ecx": r.rcx, "edx": r.rdx, "ebx": r.rbx, "esp": r.rsp, "sp": r.rsp, "ebp": r.rbp, "fp": r.rbp,
            "esi": r.rsi, "edi": r.rdi, "r8": r.r8, "r9": r.r9, "r10": r.r10, "r11": r.r11, "r12": r.r12, "r13": r.r13,
            "r14": r.r14, "r15": r.r15, "eflags": r.rflags, "eip": r.rip, "pc": r.rip &+ s.cs.base,
        ]
        return values[name]
    }

    private func qemuSyntaxError(_ message: String, command: String) -> String {
        "\(message)\nTry \"help \(command)\" for more information\n"
    }
}

/// `%016llx`
private func hex16(_ value: UInt64) -> String { String(format: "%016llx", value) }

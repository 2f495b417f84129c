import CKVM
import Foundation
import KVMRunLoop

/// `monitor ...` in gdb (qRcmd): the views of the VM that gdb's own commands cannot give.
extension Controller {
    static let monitorHelp = """
        gdbvmm monitor commands (those QEMU also has answer in QEMU's format):
          help                  this list
          info registers        QEMU's register dump of the current vCPU (GDT=, IDT=, CR0=, ...)
          info mem              QEMU's list of mapped ranges: start-end size perm (u/-, r, w/-)
          info tlb              QEMU's list of page-table leaf entries: virtual: physical flags
          info mtree            guest RAM, MMIO and port I/O devices, in QEMU's layout
          gva2gpa ADDR          the guest-physical address ADDR maps to (current vCPU)
          xp /NFS ADDR          N units of physical memory at ADDR, F: x d u o c, S: b h w g
                                (QEMU remembers F and S between commands, and so does gdbvmm);
                                also xp ADDR N
          info sysregs          DR0-7, selected MSRs, segments, descriptor tables, mp state
          info mappings         the page-table mappings merged into ranges, with physical starts
          info exits            KVM exits per vCPU: reason, count, time spent in KVM_RUN
          info cpus             every vCPU and its state
          phys on|off           memory packets take physical addresses (on) or virtual (off);
                                the same as QEMU's maint packet Qqemu.PhyMemMode:1 or :0
          system_reset          back to the image's entry state; breakpoints are kept
          exits reset           clear the exit counters
          quit                  end the VM (gdbvmm exits with status 0)

        """

    func runMonitorCommand(_ line: String) -> String {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let first = words.first else { return Controller.monitorHelp }
        switch (first, words.count > 1 ? words[1] : "") {
        case ("help", _), ("?", _): return Controller.monitorHelp
        case ("info", "exits"): return exitTable()
        case ("info", "registers"): return qemuInfoRegisters()
        case ("info", "sysregs"), ("info", "regs"): return systemRegisters()
        case ("info", "mem"): return qemuInfoMem()
        case ("info", "tlb"): return qemuInfoTLB()
        case ("info", "mtree"): return qemuInfoMtree()
        case ("info", "mappings"): return memoryMappings()
        case ("info", "cpus"): return cpuList()
        case ("gva2gpa", _): return qemuGva2gpa(Array(words.dropFirst()))
        case ("xp", _): return qemuXP(Array(words.dropFirst()))
        case ("phys", "on"):
            machine.physicalAddressing = true
            return "memory packets now take guest-physical addresses\n"
        case ("phys", "off"):
            machine.physicalAddressing = false
            return "memory packets now take guest-virtual addresses (translated by vCPU \(currentVCPU)'s page tables)\n"
        case ("phys", _):
            return "memory packets take guest-\(machine.physicalAddressing ? "physical" : "virtual") addresses; use 'monitor phys on' or 'monitor phys off'\n"
        case ("system_reset", _):
            do {
                if let error = resetMachine() { throw error }
                currentVCPU = 0
                return "the guest is back at its entry point; breakpoints are kept (gdb's view of registers refreshes at the next stop: use 'stepi' or 'flushregs')\n"
            } catch {
                return "system_reset failed: \(error)\n"
            }
        case ("exits", "reset"):
            machine.statistics.reset()
            return "exit counters cleared\n"
        case ("quit", _), ("q", _):
            quitVM()
            return "ending the VM\n"
        default:
            // QEMU's first line (pwndbg looks for "unknown command"), then gdbvmm's list.
            return "unknown command: '\(first)'\n\n" + Controller.monitorHelp
        }
    }

    private func exitTable() -> String {
        var text = "serial output dropped (its reader did not keep up): \(console?.dropped ?? 0) bytes\n"
        text += "system calls so far: \(SystemCalls.count)\n"
        for (vcpu, table) in machine.statistics.snapshot().enumerated() {
            text += "vCPU \(vcpu): \(vcpuCountText(table)) exits\n"
            text += "  reason                         count      total ms    avg us\n"
            let rows = table.sorted { $0.value.count != $1.value.count ? $0.value.count > $1.value.count : $0.key < $1.key }
            for (reason, entry) in rows {
                let ms = Double(entry.nanoseconds) / 1e6
                let avg = entry.count == 0 ? 0 : Double(entry.nanoseconds) / Double(entry.count) / 1e3
                text += "  " + reason.padding(toLength: 28, withPad: " ", startingAt: 0)
                text += String(format: "%8llu  %12.3f  %8.2f\n", entry.count, ms, avg)
            }
        }
        return text
    }

    private func vcpuCountText(_ table: [String: ExitStatistics.Entry]) -> String {
        String(table.values.reduce(UInt64(0)) { $0 + $1.count })
    }

    private func systemRegisters() -> String {
        let text = "vCPU \(currentVCPU)\n"
        do {
            return try machine.withVCPU(currentVCPU) { (vcpu) throws(SystemError) in try systemRegisters(vcpu, text) }
        } catch {
            return text + "error reading registers: \(error)\n"
        }
    }

    /// Runs on the vCPU's own thread.
    private func systemRegisters(_ vcpu: VCPU, _ heading: String) throws(SystemError) -> String {
        var text = heading
        do {
            let d = try vcpu.getDebugRegs()
            // SAFETY: kvm_debugregs.db is four u64s; the loads stay within it.
            let dr = withUnsafeBytes(of: d.db) { raw in (0..<4).map { raw.load(fromByteOffset: $0 * 8, as: UInt64.self) } }
            text += "dr0 \(hex(dr[0]))  dr1 \(hex(dr[1]))  dr2 \(hex(dr[2]))  dr3 \(hex(dr[3]))\n"
            text += "dr6 \(hex(d.dr6))  dr7 \(hex(d.dr7))\n"
            let msrs: [(String, UInt32)] = [
                ("EFER", 0xC000_0080), ("STAR", 0xC000_0081), ("LSTAR", 0xC000_0082), ("CSTAR", 0xC000_0083),
                ("SFMASK", 0xC000_0084), ("FS_BASE", 0xC000_0100), ("GS_BASE", 0xC000_0101),
                ("KERNEL_GS_BASE", 0xC000_0102), ("APIC_BASE", 0x1B), ("SYSENTER_CS", 0x174),
                ("SYSENTER_ESP", 0x175), ("SYSENTER_EIP", 0x176), ("PAT", 0x277), ("TSC", 0x10),
            ]
            let values = try vcpu.getMSRs(msrs.map(\.1))
            for (name, index) in msrs {
                let value = values[index].map { hex($0) } ?? "(unavailable)"
                text += "msr " + "\(name) (0x\(String(index, radix: 16)))".padding(toLength: 26, withPad: " ", startingAt: 0) + value + "\n"
            }
            let s = try vcpu.getSregs()
            for (name, seg) in [("cs", s.cs), ("ds", s.ds), ("es", s.es), ("fs", s.fs), ("gs", s.gs), ("ss", s.ss), ("tr", s.tr), ("ldt", s.ldt)] {
                text += name.padding(toLength: 4, withPad: " ", startingAt: 0)
                text += "sel 0x\(String(format: "%04x", seg.selector)) base \(hex(seg.base)) limit 0x\(String(format: "%08x", seg.limit))"
                text += " type 0x\(String(seg.type, radix: 16)) dpl \(seg.dpl) \(seg.present != 0 ? "P" : "-")\(seg.l != 0 ? " L" : "")\(seg.db != 0 ? " D" : "")\(seg.g != 0 ? " G" : "")\(seg.unusable != 0 ? " unusable" : "")\n"
            }
            text += "gdt base \(hex(s.gdt.base)) limit 0x\(String(s.gdt.limit, radix: 16))\n"
            text += "idt base \(hex(s.idt.base)) limit 0x\(String(s.idt.limit, radix: 16))\n"
            text += "cr0 \(hex(s.cr0))  cr2 \(hex(s.cr2))  cr3 \(hex(s.cr3))  cr4 \(hex(s.cr4))  cr8 \(hex(s.cr8))\n"
            text += "apic_base \(hex(s.apic_base))\n"
            let mp = try vcpu.getMPState()
            text += "mp_state \(mpStateName(mp)) (\(mp))\n"
            let events = try vcpu.getVCPUEvents()
            text += "pending exception \(events.exception.injected != 0 ? "vector \(events.exception.nr)" : "none"), "
            text += "interrupt \(events.interrupt.injected != 0 ? "vector \(events.interrupt.nr)" : "none"), "
            text += "nmi \(events.nmi.pending != 0 ? "pending" : "none")\n"
        }
        return text
    }

    private func mpStateName(_ state: UInt32) -> String {
        switch Int32(state) {
        case KVM_MP_STATE_RUNNABLE: return "runnable"
        case KVM_MP_STATE_UNINITIALIZED: return "uninitialized (waiting for INIT)"
        case KVM_MP_STATE_INIT_RECEIVED: return "INIT received (waiting for SIPI)"
        case KVM_MP_STATE_HALTED: return "halted"
        case KVM_MP_STATE_SIPI_RECEIVED: return "SIPI received"
        default: return "state"
        }
    }

    private func memoryMappings() -> String {
        guard let paging = machine.parkedRegisters(currentVCPU)?.paging else { return "cannot read vCPU registers\n" }
        let ranges = PageWalker.mappings(paging: paging, memory: machine.ram)
        if paging.cr0 & (1 << 31) == 0 {
            return "paging is off on vCPU \(currentVCPU): virtual addresses are physical\n"
        }
        var text = "vCPU \(currentVCPU), cr3 \(hex(paging.cr3))\n"
        text += "virtual start        virtual end          physical start       size         perm\n"
        for r in ranges {
            let perm = (r.user ? "u" : "-") + "r" + (r.writable ? "w" : "-") + (r.executable ? "x" : "-")
            text += "\(hex(r.virtualStart))   \(hex(r.virtualStart &+ r.size))   \(hex(r.physicalStart))   "
            text += String(format: "0x%-10llx ", r.size) + perm + "\n"
        }
        if ranges.isEmpty { text += "(no mappings)\n" }
        return text
    }

    private func cpuList() -> String {
        var text = ""
        for i in 0..<machine.vcpuCount {
            let rip = machine.parkedRegisters(i).map { hex($0.regs.rip) } ?? "?"
            text += "\(i == currentVCPU ? "*" : " ") vCPU \(i) (thread \(i + 1)): \(threadExtraInfo(i + 1)), rip \(rip)\n"
        }
        return text
    }
}

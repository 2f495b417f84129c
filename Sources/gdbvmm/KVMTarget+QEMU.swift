import CKVM
import KVMRunLoop
import RSP

/// QEMU's maintenance packets, served as QEMU under KVM serves them: single steps can hold
/// interrupts off (KVM_GUESTDBG_BLOCKIRQ, where KVM has it); timers are the host's and run on,
/// so NOTIMER is not offered.
extension Controller: QEMUMaintenanceTarget, ServerVersionTarget {
    var supportedStepFlags: UInt32 {
        QEMUStepFlags.enable | (machine.canBlockInterruptsWhileStepping ? QEMUStepFlags.noIRQ : 0)
    }

    var stepFlags: UInt32 {
        get { qemuStepFlags & supportedStepFlags }
        set {
            qemuStepFlags = newValue
            machine.stepsBlockInterrupts = newValue & QEMUStepFlags.noIRQ != 0
        }
    }

    var physicalMemoryMode: Bool {
        get { machine.physicalAddressing }
        set { machine.physicalAddressing = newValue }
    }

    var serverName: String { "gdbvmm" }
    var serverVersion: String { String(version.dropFirst("gdbvmm ".count)) }

    /// gdb thread n as QEMU names it (`CPU#0 [running]`, `CPU#1 [halted ]`: QEMU pads
    /// "halted" to the width of "running"), then the CPU mode and anything else to know.
    func qemuThreadExtraInfo(_ index: Int) -> String {
        let mode = machine.parkedRegisters(index).map { cpuMode($0.sregs) }
        var text = "CPU#\(index) "
        switch machine.status[index] {
        case .runnable: text += "[running]"
        case .halted: text += "[halted ]"
        case .waitingForSIPI: text += "[halted ] waiting for SIPI"
        case .crashed(let crash): text += "[running] crashed: \(crash)"
        }
        if let mode, machine.status[index] != .waitingForSIPI { text += ", " + mode }
        return text
    }
}

/// The x86 operating mode the segment and control registers put the CPU in.
func cpuMode(_ sregs: kvm_sregs) -> String {
    if sregs.cr0 & 1 == 0 { return "real mode" }
    if sregs.efer & (1 << 10) != 0 { return sregs.cs.l != 0 ? "long mode" : "compatibility mode" }
    if sregs.cr0 & (1 << 31) != 0 { return sregs.cs.db != 0 ? "32-bit protected mode, paging" : "16-bit protected mode, paging" }
    return sregs.cs.db != 0 ? "32-bit protected mode" : "16-bit protected mode"
}

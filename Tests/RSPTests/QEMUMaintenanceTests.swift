import Testing
@testable import RSP

/// A FakeTarget that also serves QEMU's maintenance packets and names its server.
final class QEMUFakeTarget: QEMUMaintenanceTarget, ServerVersionTarget {
    let base = FakeTarget()
    var supportedStepFlags: UInt32 = QEMUStepFlags.enable | QEMUStepFlags.noIRQ
    var stepFlags: UInt32 = QEMUStepFlags.enable | QEMUStepFlags.noIRQ
    var physicalMemoryMode = false
    var serverName: String { "gdbvmm" }
    var serverVersion: String { "0.1.0" }

    var threads: [ThreadID] { base.threads }
    func threadName(_ thread: ThreadID) -> String { base.threadName(thread) }
    func threadExtraInfo(_ thread: ThreadID) -> String { "CPU#\(thread - 1) [running], long mode" }
    func readRegisters(thread: ThreadID) throws(TargetError) -> X86_64Registers { try base.readRegisters(thread: thread) }
    func writeRegisters(_ r: X86_64Registers, thread: ThreadID) throws(TargetError) { try base.writeRegisters(r, thread: thread) }
    func readMemory(address: UInt64, count: Int, thread: ThreadID) throws(TargetError) -> [UInt8] {
        try base.readMemory(address: address, count: count, thread: thread)
    }
    func writeMemory(_ bytes: [UInt8], address: UInt64, thread: ThreadID) throws(TargetError) {
        try base.writeMemory(bytes, address: address, thread: thread)
    }
    func insertBreakpoint(_ kind: BreakpointKind, address: UInt64, length: Int) throws(TargetError) {
        try base.insertBreakpoint(kind, address: address, length: length)
    }
    func removeBreakpoint(_ kind: BreakpointKind, address: UInt64, length: Int) throws(TargetError) {
        try base.removeBreakpoint(kind, address: address, length: length)
    }
    func resume(_ plan: ResumePlan) throws(TargetError) { try base.resume(plan) }
    func interrupt() { base.interrupt() }
    func kill() { base.kill() }
    func detach() { base.detach() }
    func monitor(_ command: String) -> String { base.monitor(command) }
    func restart() throws(TargetError) -> StopEvent { try base.restart() }
}

@Suite struct QEMUMaintenanceTests {
    func session(_ target: any Target) -> Session {
        let s = Session(target: target)
        _ = s.receive(gdbPacket("QStartNoAckMode"))
        return s
    }

    func send(_ s: Session, _ payload: String) -> String? {
        parseStubOutput(s.receive(gdbPacket(payload)))?.last
    }

    @Test("parsing: both letters for the queries, QEMU's hex for the settings, nil for bad arguments")
    func parsing() {
        func parse(_ text: String) -> Command { Command(parsing: Array(text.utf8)) }
        #expect(parse("qqemu.Supported") == .qemu(.supported))
        #expect(parse("Qqemu.Supported") == .unknown("Qqemu.Supported"))
        #expect(parse("qqemu.sstepbits") == .qemu(.stepBits))
        #expect(parse("Qqemu.sstepbits") == .qemu(.stepBits))
        #expect(parse("qqemu.sstep") == .qemu(.stepFlags))
        #expect(parse("Qqemu.sstep") == .qemu(.stepFlags))
        #expect(parse("Qqemu.sstep=7") == .qemu(.setStepFlags(7)))
        #expect(parse("qqemu.sstep=0x3") == .qemu(.setStepFlags(3)))
        #expect(parse("Qqemu.sstep=10") == .qemu(.setStepFlags(0x10)))
        #expect(parse("Qqemu.sstep=") == .qemu(.setStepFlags(nil)))
        #expect(parse("Qqemu.sstep=zz") == .qemu(.setStepFlags(nil)))
        #expect(parse("Qqemu.sstep=11112222333344445") == .qemu(.setStepFlags(nil)))
        #expect(parse("qqemu.PhyMemMode") == .qemu(.physicalMemoryMode))
        #expect(parse("Qqemu.PhyMemMode") == .unknown("Qqemu.PhyMemMode"))
        #expect(parse("Qqemu.PhyMemMode:1") == .qemu(.setPhysicalMemoryMode(1)))
        #expect(parse("Qqemu.PhyMemMode:") == .qemu(.setPhysicalMemoryMode(nil)))
        #expect(parse("qqemu.PhyMemMode:1") == .unknown("qqemu.PhyMemMode:1"))
        #expect(parse("qqemu.bogus") == .unknown("qqemu.bogus"))
        #expect(parse("qGDBServerVersion") == .serverVersion)
    }

    /// The replies QEMU 7.2 gives under KVM (on a host with KVM_GUESTDBG_BLOCKIRQ), in order.
    @Test("the replies QEMU gives, and E22 where QEMU refuses")
    func qemuReplies() {
        let t = QEMUFakeTarget()
        let s = session(t)
        #expect(send(s, "qqemu.Supported") == "sstepbits;sstep;PhyMemMode")
        #expect(send(s, "Qqemu.sstepbits") == "ENABLE=1,NOIRQ=2")
        #expect(send(s, "qqemu.sstep") == "0x3")
        #expect(send(s, "Qqemu.sstep=7") == "E22")
        #expect(send(s, "Qqemu.sstep=4") == "E22")
        #expect(send(s, "Qqemu.sstep=1") == "OK")
        #expect(t.stepFlags == 1)
        #expect(send(s, "qqemu.sstep") == "0x1")
        #expect(send(s, "qqemu.sstep=3") == "OK")
        #expect(send(s, "Qqemu.sstep") == "0x3")
        #expect(send(s, "Qqemu.sstep=0") == "OK")
        #expect(send(s, "qqemu.sstep") == "0x0")
        #expect(send(s, "qqemu.PhyMemMode") == "0")
        #expect(send(s, "Qqemu.PhyMemMode:1") == "OK")
        #expect(t.physicalMemoryMode)
        #expect(send(s, "qqemu.PhyMemMode") == "1")
        #expect(send(s, "Qqemu.PhyMemMode:5") == "OK")
        #expect(send(s, "qqemu.PhyMemMode") == "1")
        #expect(send(s, "Qqemu.PhyMemMode:0") == "OK")
        #expect(!t.physicalMemoryMode)
        #expect(send(s, "qOffsets") == "")
        #expect(send(s, "qThreadExtraInfo,1") == String(decoding: Hex.encode(Array("CPU#0 [running], long mode".utf8)), as: UTF8.self))
        #expect(send(s, "qGDBServerVersion") == "name:gdbvmm;version:0.1.0;")
    }

    @Test("bad arguments get E22 and change nothing; the session keeps serving")
    func badArguments() {
        let t = QEMUFakeTarget()
        let s = session(t)
        for bad in ["Qqemu.sstep=", "Qqemu.sstep=zz", "Qqemu.sstep=-1", "Qqemu.PhyMemMode:", "Qqemu.PhyMemMode:x"] {
            #expect(send(s, bad) == "E22", "\(bad)")
        }
        #expect(t.stepFlags == 3 && !t.physicalMemoryMode)
        #expect(send(s, "qqemu.sstep") == "0x3")
    }

    @Test("a target without QEMU's packets answers them with the empty packet, like any other stub")
    func withoutSupport() {
        let s = session(FakeTarget())
        for packet in ["qqemu.Supported", "Qqemu.sstepbits", "qqemu.sstep", "Qqemu.sstep=1", "qqemu.PhyMemMode",
                       "Qqemu.PhyMemMode:1", "qGDBServerVersion"] {
            #expect(send(s, packet) == "", "\(packet)")
        }
    }
}

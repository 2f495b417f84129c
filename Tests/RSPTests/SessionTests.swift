import Testing
@testable import RSP

/// A session over a FakeTarget, talking in payload strings.
final class Harness {
    let target = FakeTarget()
    let session: Session

    init(noAck: Bool = true, extended: Bool = false, architecture: TargetArchitecture? = nil) {
        // nil: the initializer without the parameter, which must keep meaning x86-64.
        if let architecture {
            session = Session(target: target, architecture: architecture)
        } else {
            session = Session(target: target)
        }
        if noAck { #expect(send("QStartNoAckMode") == ["+", "OK"]) }
        if extended { #expect(send("!") == ["OK"]) }
    }

    /// Sends one packet; returns acks and reply payloads, checking their framing.
    @discardableResult
    func send(_ payload: String) -> [String] {
        raw(gdbPacket(payload))
    }

    func raw(_ bytes: [UInt8]) -> [String] {
        let out = session.receive(bytes)
        guard let items = parseStubOutput(out) else {
            Issue.record("bad framing: \(String(decoding: out, as: UTF8.self))")
            return []
        }
        return items
    }

    func stopped(_ event: StopEvent) -> [String] {
        parseStubOutput(session.targetStopped(event)) ?? ["<bad framing>"]
    }
}

private func hexText(_ s: String) -> String { String(decoding: Hex.encode(Array(s.utf8)), as: UTF8.self) }

@Suite struct SessionTests {
    /// What gdb 13 sends on `target remote`, then a breakpoint, a continue, and the hit.
    @Test func gdb13ConnectionTranscript() throws {
        let h = Harness(noAck: false)
        let t = h.target
        #expect(h.raw(Array("+".utf8)) == [])
        #expect(h.send("qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;vfork-events+;exec-events+;vContSupported+;QThreadEvents+;no-resumed+;memory-tagging+;xmlRegisters=i386")
                == ["+", "PacketSize=20000;qXfer:features:read+;qXfer:threads:read+;QStartNoAckMode+;swbreak+;hwbreak+;vContSupported+;binary-upload+"])
        #expect(h.send("vMustReplyEmpty") == ["+", ""])
        #expect(h.send("QStartNoAckMode") == ["+", "OK"])
        #expect(h.raw(Array("+".utf8)) == [])
        // From here on, no acks.
        #expect(h.send("Hg0") == ["OK"])
        // gdb asks for PacketSize - 5 bytes at a time.
        #expect(h.send("qXfer:features:read:target.xml:0,1fffb") == ["l" + TargetDescription.xml(for: .x86_64)])
        var assembled = ""
        var offset = 0
        while true {
            let reply = try #require(h.send("qXfer:features:read:target.xml:\(String(offset, radix: 16)),ffb").first)
            assembled += reply.dropFirst()
            offset += reply.utf8.count - 1
            if reply.hasPrefix("l") { break }
            #expect(reply.hasPrefix("m") && reply.utf8.count == 1 + 0xffb)
        }
        #expect(assembled == TargetDescription.xml(for: .x86_64))
        #expect(h.send("qTStatus") == [""])
        #expect(h.send("?") == ["T05thread:01;10:0000100000000000;07:0070000000000000;06:f07f000000000000;"])
        #expect(h.send("qXfer:threads:read::0,ffb") == [
            "l<?xml version=\"1.0\"?>\n<threads>\n  <thread id=\"1\" name=\"vCPU 0\">long mode &lt;&amp;&gt;</thread>\n"
            + "  <thread id=\"2\" name=\"vCPU 1\">long mode &lt;&amp;&gt;</thread>\n</threads>\n",
        ])
        #expect(h.send("qfThreadInfo") == ["m1,2"])
        #expect(h.send("qsThreadInfo") == ["l"])
        #expect(h.send("qAttached") == ["1"])
        #expect(h.send("Hc-1") == ["OK"])
        #expect(h.send("qC") == ["QC1"])
        #expect(h.send("qOffsets") == [""])
        let g = try #require(h.send("g").first)
        #expect(g.count == 2 * 656)
        #expect(g.hasPrefix("0000000001000000"))
        #expect(h.send("qSymbol::") == ["OK"])
        #expect(h.send("m1000,4") == ["00010203"])
        #expect(h.send("Z0,1010,1") == ["OK"])
        #expect(h.send("vCont?") == ["vCont;c;C;s;S;t;r"])
        #expect(h.send("vCont;c:-1") == [])
        #expect(h.session.isRunning)
        #expect(t.calls.last == .resume(ResumePlan(actions: [1: .continue(signal: nil), 2: .continue(signal: nil)])))
        t.registers[2]?.rip = 0x1010
        #expect(h.stopped(.stopped(thread: 2, signal: 5, reason: .softwareBreakpoint))
                == ["T05thread:02;swbreak:;10:1010000000000000;07:0070000000000000;06:f07f000000000000;"])
        #expect(!h.session.isRunning)
        #expect(h.send("qC") == ["QC2"])
        #expect(h.send("z0,1010,1") == ["OK"])
        #expect(t.calls.contains(.insert(.software, 0x1010, 1)) && t.calls.last == .remove(.software, 0x1010, 1))
        // Continue, then Ctrl-C while running.
        #expect(h.send("vCont;c") == [])
        #expect(h.raw([0x03]) == [])
        #expect(t.calls.last == .interrupt)
        #expect(h.stopped(.stopped(thread: 1, signal: GDBSignal.sigint, reason: .none)).first?.hasPrefix("T02thread:01;10:") == true)
        #expect(h.send("qRcmd,\(hexText("info registers"))") == ["O\(hexText("ok\n"))", "OK"])
        #expect(t.calls.last == .monitor("info registers"))
        #expect(h.send("D") == ["OK"])
        #expect(t.calls.last == .detach)
        #expect(h.session.isClosed)
        #expect(h.raw(gdbPacket("g")) == [])
    }

    @Test func ackModeRetransmitsAndNaksBadChecksums() {
        let h = Harness(noAck: false)
        #expect(h.send("qC") == ["+", "QC1"])
        #expect(h.raw(Array("-".utf8)) == ["QC1"])
        #expect(h.raw(Array("$qC#00".utf8)) == ["-"])
        #expect(h.send("QStartNoAckMode") == ["+", "OK"])
        #expect(h.raw(Array("$qC#00".utf8)) == [])
        #expect(h.send("qC") == ["QC1"])
    }

    @Test func malformedPacketsGetE01() {
        let h = Harness()
        #expect(h.send("m1000") == ["E01"])
        #expect(h.send("Hgzz") == ["E01"])
        #expect(h.send("P99=00") == ["E01"])
        #expect(h.send("p5c") == ["E01"])
        #expect(h.send("P10=0000") == ["E01"])
        #expect(h.send("G" + String(repeating: "00", count: 657)) == ["E01"])
        #expect(h.send("qXfer:features:read:other.xml:0,10") == ["E00"])
        #expect(h.send("vCont;t") == ["E01"])
        #expect(h.send("Hg7") == ["E02"])
        #expect(h.send("T7") == ["E02"])
        #expect(h.send("T2") == ["OK"])
        #expect(h.send("vCont;c:9") == ["E02"])
        #expect(h.send("qThreadExtraInfo,9") == ["E02"])
        #expect(h.send("qThreadExtraInfo,2") == [hexText("long mode <&>")])
        #expect(!h.session.isRunning)
    }

    @Test func registersFollowHg() throws {
        let h = Harness()
        #expect(h.send("Hg2") == ["OK"])
        #expect(h.send("p0") == ["0000000002000000"])
        #expect(h.send("P10=efbeadde00000000") == ["OK"])
        #expect(h.target.registers[2]?.rip == 0xdead_beef)
        #expect(h.target.registers[1]?.rip == 0x100000)
        #expect(h.send("p10") == ["efbeadde00000000"])
        // A short G updates only the registers it covers.
        #expect(h.send("G" + String(repeating: "11", count: 8) + "22") == ["OK"])
        #expect(h.target.registers[2]?.gpr[0] == 0x1111_1111_1111_1111)
        #expect(h.target.registers[2]?.gpr[1] == 0x2_0000_0001)
        let full = String(decoding: Hex.encode(sampleRegisters().rawBytes), as: UTF8.self)
        #expect(h.send("G" + full) == ["OK"])
        // The g packet holds no MSRs, debug registers or AVX state (this layout has no AVX).
        var written = try #require(h.target.registers[2])
        let sample = sampleRegisters()
        #expect(written.gpr == sample.gpr && written.xmm[..<16] == sample.xmm[..<16] && written.cr4 == sample.cr4)
        #expect(written.gdtrBase == sample.gdtrBase && written.tr == sample.tr)
        written.kernelGsBase = sample.kernelGsBase
        written.msrs = sample.msrs
        written.debugRegisters = sample.debugRegisters
        written.xmm[16...] = sample.xmm[16...]
        written.ymmh = sample.ymmh
        written.zmmh = sample.zmmh
        written.k = sample.k
        written.pkru = sample.pkru
        #expect(written == sample)
        #expect(h.send("g") == [full])
        #expect(h.send("p29") == [String(decoding: Hex.encode(sampleRegisters().xmm[1]), as: UTF8.self)])
        #expect(h.send("Hg0") == ["OK"])
        #expect(h.send("p0") == ["0000000001000000"])
    }

    @Test func memoryReadsWritesAndErrors() {
        let h = Harness()
        #expect(h.send("m1002,3") == ["020304"])
        // Partial reads return what could be read.
        #expect(h.send("m10ffe,10") == ["feff"])
        #expect(h.send("m0,4") == ["E0e"])
        #expect(h.send("m1000,0") == [""])
        // Lengths are capped at the packet size.
        #expect(h.send("m1000,ffffffffffff").first?.count == 0x20000)
        #expect(h.send("mfffffffffffffff0,100") == ["E0e"])
        #expect(h.send("M1000,2:abcd") == ["OK"])
        #expect(h.send("m1000,2") == ["abcd"])
        #expect(h.send("X1000,0:") == ["OK"])
        #expect(h.raw(PacketEncoder.frame(Array("X1000,3:".utf8) + [UInt8(ascii: "$"), 0x7d, 0x2a])) == ["OK"])
        #expect(h.target.memory[0..<3] == [0x24, 0x7d, 0x2a])
        #expect(h.send("x1000,3") == ["b$}*"])
        #expect(h.send("M0,1:00") == ["E0e"])
        h.target.failure = .message("page #3 not mapped")
        #expect(h.send("m1000,1") == ["E01"])
        #expect(h.send("qSupported:error-message+").count == 1)
        #expect(h.send("m1000,1") == ["E.page ?3 not mapped"])
        h.target.failure = .unsupported
        #expect(h.send("m1000,1") == [""])
    }

    @Test func breakpointKindsAndFallback() {
        let h = Harness()
        #expect(h.send("Z1,2000,1") == ["OK"])
        #expect(h.send("Z2,3000,8") == ["OK"])
        #expect(h.send("Z3,3000,4") == ["OK"])
        #expect(h.send("Z4,3000,4") == [""])
        #expect(h.send("Z9,3000,4") == [""])
        #expect(h.target.calls == [.insert(.hardware, 0x2000, 1), .insert(.writeWatch, 0x3000, 8), .insert(.readWatch, 0x3000, 4)])
        h.target.failure = .errno(0x16)
        #expect(h.send("Z0,2000,1") == ["E16"])
    }

    @Test func stopRepliesForEveryReason() {
        let h = Harness()
        let rest = ";10:0000100000000000;07:0070000000000000;06:f07f000000000000;"
        let cases: [(StopReason, String)] = [
            (.none, "T05thread:01"),
            (.softwareBreakpoint, "T05thread:01;swbreak:"),
            (.hardwareBreakpoint, "T05thread:01;hwbreak:"),
            (.watch(address: 0x2000), "T05thread:01;watch:2000"),
            (.readWatch(address: 0xffff_8000_0000_0010), "T05thread:01;rwatch:ffff800000000010"),
            (.accessWatch(address: 0), "T05thread:01;awatch:0"),
        ]
        for (reason, expected) in cases {
            #expect(h.send("c") == [])
            #expect(h.stopped(.stopped(thread: 1, signal: 5, reason: reason)) == [expected + rest])
        }
        #expect(h.send("?") == ["T05thread:01;awatch:0" + rest])
        // Registers that cannot be read are simply not expedited.
        h.target.failure = .errno(5)
        #expect(h.send("?") == ["T05thread:01;awatch:0;"])
    }

    /// A target that serves stop registers on their own: the stop reply uses them, and the
    /// whole register file is read only for `g`.
    @Test func stopRepliesUseStopRegisters() {
        let h = Harness()
        var cheap = X86_64Registers()
        cheap.rip = 0xAA
        h.target.stopRegisterFile = cheap
        #expect(h.send("c") == [])
        let reads = h.target.fullRegisterReads
        #expect(h.stopped(.stopped(thread: 1, signal: 5, reason: .none))
                == ["T05thread:01;10:aa00000000000000;07:0000000000000000;06:0000000000000000;"])
        #expect(h.target.fullRegisterReads == reads)
        _ = h.send("g")
        #expect(h.target.fullRegisterReads == reads + 1)
    }

    @Test func legacyResumeUsesHc() {
        let h = Harness()
        #expect(h.send("Hc2") == ["OK"])
        #expect(h.send("s") == [])
        #expect(h.target.calls.last == .resume(ResumePlan(actions: [2: .step(signal: nil)])))
        _ = h.stopped(.stopped(thread: 2, signal: 5, reason: .none))
        #expect(h.send("C0b;2000") == [])
        #expect(h.target.registers[2]?.rip == 0x2000)
        #expect(h.target.calls.last == .resume(ResumePlan(actions: [1: .continue(signal: nil), 2: .continue(signal: 11)])))
        _ = h.stopped(.stopped(thread: 1, signal: 5, reason: .none))
        #expect(h.send("Hc-1") == ["OK"])
        #expect(h.send("S05") == [])
        // -1 steps the current thread (the last one to stop) only.
        #expect(h.target.calls.last == .resume(ResumePlan(actions: [1: .step(signal: 5)])))
    }

    @Test func vContPlans() {
        let h = Harness()
        #expect(h.send("vCont;s:2;c") == [])
        #expect(h.target.calls.last == .resume(ResumePlan(actions: [2: .step(signal: nil), 1: .continue(signal: nil)])))
        _ = h.stopped(.stopped(thread: 2, signal: 5, reason: .none))
        // The leftmost action naming a thread wins.
        #expect(h.send("vCont;c;s:2") == [])
        #expect(h.target.calls.last == .resume(ResumePlan(actions: [1: .continue(signal: nil), 2: .continue(signal: nil)])))
        _ = h.stopped(.stopped(thread: 2, signal: 5, reason: .none))
        #expect(h.send("vCont;S0b:0;t") == [])
        #expect(h.target.calls.last == .resume(ResumePlan(actions: [2: .step(signal: 11), 1: .stop])))
        // A range step for one thread, the others continue (gdb's `next` in all-stop mode).
        _ = h.stopped(.stopped(thread: 2, signal: 5, reason: .none))
        #expect(h.send("vCont;r1000,1010:2;c") == [])
        #expect(h.target.calls.last == .resume(ResumePlan(actions: [2: .rangeStep(start: 0x1000, end: 0x1010),
                                                                    1: .continue(signal: nil)])))
        // Resume failures are reported and leave the target stopped.
        _ = h.stopped(.stopped(thread: 2, signal: 5, reason: .none))
        h.target.failure = .errno(1)
        #expect(h.send("vCont;c") == ["E01"])
        #expect(!h.session.isRunning)
    }

    @Test func whileRunningOnlyCtrlCMatters() {
        let h = Harness(noAck: false)
        #expect(h.send("c") == ["+"])
        #expect(h.send("g") == ["+"])
        #expect(h.send("vCtrlC") == ["+", "OK"])
        #expect(h.target.calls.last == .interrupt)
        #expect(h.session.consoleOutput(Array("hi".utf8)).isEmpty == false)
        #expect(parseStubOutput(h.session.consoleOutput(Array("hi".utf8))) == ["O6869"])
        #expect(h.stopped(.stopped(thread: 1, signal: 2, reason: .none)).first?.hasPrefix("T02") == true)
        // The stop reply is what `-` now retransmits.
        #expect(h.raw(Array("-".utf8)).first?.hasPrefix("T02") == true)
        #expect(h.session.consoleOutput(Array("late".utf8)).isEmpty)
        // A stray Ctrl-C or a stop nobody waits for is harmless.
        #expect(h.raw([0x03]) == [])
        #expect(h.stopped(.exited(status: 0)) == [])
        #expect(h.session.lastStop == .exited(status: 0))
        #expect(!h.session.isClosed)
    }

    @Test func exitEndsTheSessionUnlessExtended() {
        let h = Harness()
        #expect(h.send("c") == [])
        #expect(h.stopped(.exited(status: 3)) == ["W03"])
        #expect(h.session.isClosed)
        #expect(h.stopped(.exited(status: 3)) == [])

        let x = Harness(extended: true)
        #expect(x.send("c") == [])
        #expect(x.stopped(.terminated(signal: 9)) == ["X09"])
        #expect(!x.session.isClosed)
        #expect(x.send("?") == ["X09"])
        #expect(x.send("qC") == ["QC1"])
        #expect(x.send("vRun;") == ["T05thread:01;10:0000100000000000;07:0070000000000000;06:f07f000000000000;"])
        #expect(x.target.calls.last == .restart)
        x.target.restartEvent = .stopped(thread: 2, signal: 5, reason: .none)
        #expect(x.send("R00") == [])
        #expect(x.session.lastStop == .stopped(thread: 2, signal: 5, reason: .none))
        x.target.failure = .message("no kernel")
        #expect(x.send("vRun;") == ["E01"])
    }

    @Test func killAndDetach() {
        let h = Harness()
        #expect(h.send("k") == [])
        #expect(h.target.calls == [.kill])
        #expect(h.session.isClosed)

        let v = Harness()
        #expect(v.send("vKill;a410") == ["OK"])
        #expect(v.session.isClosed)

        let x = Harness(extended: true)
        #expect(x.send("k") == [])
        #expect(!x.session.isClosed)
        #expect(x.send("?") == ["X09"])
        #expect(x.send("vKill;a410") == ["OK"])
        #expect(!x.session.isClosed)
        #expect(x.send("D;a410") == ["OK"])
        #expect(x.session.isClosed)
    }

    @Test func monitorOutputIsChunked() {
        let h = Harness()
        h.target.monitorOutput = ""
        #expect(h.send("qRcmd,\(hexText("help"))") == ["OK"])
        h.target.monitorOutput = String(repeating: "x", count: 0x4001)
        let replies = h.send("qRcmd,\(hexText("dump"))")
        #expect(replies.count == 3)
        #expect(replies[0].count == 1 + 0x8000 && replies[1] == "O78" && replies[2] == "OK")
    }

    @Test func packetsInOneChunkAreAllAnswered() {
        let h = Harness(noAck: false)
        let out = h.raw(gdbPacket("qC") + Array("+".utf8) + gdbPacket("T1") + Array("garbage".utf8) + gdbPacket("qsThreadInfo"))
        #expect(out == ["+", "QC1", "+", "OK", "+", "l"])
    }

    @Test func oversizedPacketIsAnsweredNotFatal() {
        let h = Harness()
        let huge = "M1000,1:" + String(repeating: "0", count: 2_000_000)
        #expect(h.send(huge) == ["E01"])
        #expect(h.send("qC") == ["QC1"])
    }
}

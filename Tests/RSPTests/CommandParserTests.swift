import Testing
@testable import RSP

private func parse(_ s: String) -> Command { Command(parsing: Array(s.utf8)) }

private func isMalformed(_ command: Command) -> Bool {
    if case .malformed = command { return true }
    return false
}

@Suite struct CommandParserTests {
    @Test func registersAndMemory() {
        #expect(parse("?") == .haltReason)
        #expect(parse("g") == .readRegisters)
        #expect(parse("G0102ff") == .writeRegisters([1, 2, 0xff]))
        #expect(parse("p10") == .readRegister(16))
        #expect(parse("P10=efbeadde00000000") == .writeRegister(16, value: [0xef, 0xbe, 0xad, 0xde, 0, 0, 0, 0]))
        #expect(parse("m1000,40") == .readMemory(address: 0x1000, length: 0x40, binary: false))
        #expect(parse("xffffffff80000000,1000") == .readMemory(address: 0xffff_ffff_8000_0000, length: 0x1000, binary: true))
        #expect(parse("M1000,2:abcd") == .writeMemory(address: 0x1000, bytes: [0xab, 0xcd]))
        #expect(parse("X1000,3:a#b") == .writeMemory(address: 0x1000, bytes: Array("a#b".utf8)))
        #expect(parse("X1000,0:") == .writeMemory(address: 0x1000, bytes: []))
        #expect(parse("Mffffffffffffffff,1:00") == .writeMemory(address: UInt64.max, bytes: [0]))
    }

    @Test func resumes() {
        #expect(parse("c") == .continue(signal: nil, address: nil))
        #expect(parse("c100000") == .continue(signal: nil, address: 0x100000))
        #expect(parse("s") == .step(signal: nil, address: nil))
        #expect(parse("s2000") == .step(signal: nil, address: 0x2000))
        #expect(parse("C0b") == .continue(signal: 11, address: nil))
        #expect(parse("C02;1234") == .continue(signal: 2, address: 0x1234))
        #expect(parse("S05") == .step(signal: 5, address: nil))
        #expect(parse("S05;ff") == .step(signal: 5, address: 0xff))
        #expect(parse("vCont?") == .vContQuery)
        #expect(parse("vCont;c") == .vCont([VContAction(action: .continue(signal: nil), thread: nil)]))
        #expect(parse("vCont;s:1;c") == .vCont([
            VContAction(action: .step(signal: nil), thread: .thread(1)),
            VContAction(action: .continue(signal: nil), thread: nil),
        ]))
        #expect(parse("vCont;C02:2;S05:a;t:-1;c:0") == .vCont([
            VContAction(action: .continue(signal: 2), thread: .thread(2)),
            VContAction(action: .step(signal: 5), thread: .thread(10)),
            VContAction(action: .stop, thread: .all),
            VContAction(action: .continue(signal: nil), thread: .any),
        ]))
        #expect(parse("vCtrlC") == .ctrlC)
    }

    @Test("vCont;r start,end (range stepping), with and without a thread, beside other actions")
    func rangeStep() {
        #expect(parse("vCont;r100098,106098:1;c") == .vCont([
            VContAction(action: .rangeStep(start: 0x100098, end: 0x106098), thread: .thread(1)),
            VContAction(action: .continue(signal: nil), thread: nil),
        ]))
        #expect(parse("vCont;rffffffff81000000,ffffffff81000010") == .vCont([
            VContAction(action: .rangeStep(start: 0xFFFF_FFFF_8100_0000, end: 0xFFFF_FFFF_8100_0010), thread: nil),
        ]))
        #expect(parse("vCont;r1000,1000:2;t") == .vCont([
            VContAction(action: .rangeStep(start: 0x1000, end: 0x1000), thread: .thread(2)),
            VContAction(action: .stop, thread: nil),
        ]))
    }

    @Test func threads() {
        #expect(parse("Hg0") == .setGeneralThread(.any))
        #expect(parse("Hg-1") == .setGeneralThread(.all))
        #expect(parse("Hg1f") == .setGeneralThread(.thread(0x1f)))
        #expect(parse("Hc-1") == .setContinueThread(.all))
        #expect(parse("Hc2") == .setContinueThread(.thread(2)))
        #expect(parse("T1") == .threadAlive(.thread(1)))
        #expect(parse("qC") == .currentThread)
        #expect(parse("qfThreadInfo") == .threadInfoFirst)
        #expect(parse("qsThreadInfo") == .threadInfoNext)
        #expect(parse("qThreadExtraInfo,2") == .threadExtraInfo(2))
        #expect(parse("qXfer:threads:read::0,1000") == .readThreads(offset: 0, length: 0x1000))
    }

    @Test func queries() {
        #expect(parse("qAttached") == .attached)
        #expect(parse("qAttached:a410") == .attached)
        #expect(parse("qSupported") == .supported(features: []))
        #expect(parse("qSupported:multiprocess+;swbreak+;xmlRegisters=i386;error-message+")
                == .supported(features: ["multiprocess+", "swbreak+", "xmlRegisters=i386", "error-message+"]))
        #expect(parse("qXfer:features:read:target.xml:0,ffb") == .readFeatures(annex: "target.xml", offset: 0, length: 0xffb))
        #expect(parse("qXfer:features:read:i386-64bit.xml:100,200") == .readFeatures(annex: "i386-64bit.xml", offset: 0x100, length: 0x200))
        #expect(parse("qRcmd,696e666f") == .monitor("info"))
        #expect(parse("qRcmd,") == .monitor(""))
        #expect(parse("qOffsets") == .offsets)
        #expect(parse("qSymbol::") == .symbolLookup)
        #expect(parse("qTStatus") == .traceStatus)
        #expect(parse("QStartNoAckMode") == .startNoAckMode)
        #expect(parse("vMustReplyEmpty") == .mustReplyEmpty)
    }

    @Test func breakpoints() {
        #expect(parse("Z0,100000,1") == .insertBreakpoint(.software, address: 0x100000, kind: 1))
        #expect(parse("Z1,100000,1") == .insertBreakpoint(.hardware, address: 0x100000, kind: 1))
        #expect(parse("Z2,2000,8") == .insertBreakpoint(.writeWatch, address: 0x2000, kind: 8))
        #expect(parse("z3,2000,4") == .removeBreakpoint(.readWatch, address: 0x2000, kind: 4))
        #expect(parse("z4,2000,2") == .removeBreakpoint(.accessWatch, address: 0x2000, kind: 2))
        #expect(parse("Z0,100000,1;X3,220127") == .insertBreakpointWithOptions(.software, address: 0x100000, kind: 1,
            options: BreakpointOptions(conditions: [try! AgentExpression(validating: [0x22, 0x01, 0x27], isCondition: true)])))
        #expect(parse("Z5,100000,1") == .unknown("Z5,100000,1"))
    }

    @Test func lifecycle() {
        #expect(parse("k") == .kill)
        #expect(parse("D") == .detach)
        #expect(parse("D;a410") == .detach)
        #expect(parse("!") == .extendedMode)
        #expect(parse("vRun;") == .run)
        #expect(parse("vRun;2f62696e;6172") == .run)
        #expect(parse("R00") == .restart)
        #expect(parse("vKill;a410") == .vKill)
    }

    @Test func searchAndCRC() {
        #expect(parse("qCRC:100000,2000") == .crc(address: 0x100000, length: 0x2000))
        #expect(parse("qCRC:0,ffffffffffffffff") == .crc(address: 0, length: UInt64.max))
        #expect(parse("qCRC:1") == .malformed("expected 'qCRC:addr,len'"))
        #expect(parse("qSearch:memory:1000;800000;ab;c") == .searchMemory(address: 0x1000, length: 0x80_0000,
                                                                          pattern: Array("ab;c".utf8)))
        #expect(parse("qSearch:memory:1000;800000;") == .malformed("qSearch:memory with an empty pattern"))
        #expect(parse("qSearch:memory:1000;ab") == .malformed("expected 'qSearch:memory:addr;len;pattern'"))
        #expect(parse("qSearch:memory:;1;a") == .malformed("expected 'qSearch:memory:addr;len;pattern'"))
    }

    @Test func unknownPacketsKeepTheirText() {
        #expect(parse("qTfV") == .unknown("qTfV"))
        #expect(parse("vFile:open:2f,0,0") == .unknown("vFile:open:2f,0,0"))
        #expect(parse("QNonStop:1") == .unknown("QNonStop:1"))
        #expect(parse("qXfer:auxv:read::0,100") == .unknown("qXfer:auxv:read::0,100"))
        #expect(parse("qGetTLSAddr:1,2,3") == .unknown("qGetTLSAddr:1,2,3"))
        #expect(parse("Hs1") == .unknown("Hs1"))
        #expect(parse("") == .unknown(""))
        if case .unknown(let text) = parse("v" + String(repeating: "x", count: 10_000)) {
            #expect(text.utf8.count == 64)
        } else {
            Issue.record("expected unknown")
        }
    }

    @Test func malformedArgumentsNeverTrap() {
        let bad = [
            "?x", "gx", "G0", "Gzz", "p", "pzz", "p10000000000000000", "P10", "P10=abc", "Pq=00",
            "m", "m1000", "m1000,", "m,4", "mzz,4", "m1000,zz", "m10000000000000000,1",
            "m1000,8000000000000000", "M1000,2:ab", "M1000,1:zz", "M1000,1", "Mffffffffffffffff,2:0000",
            "X1000,5:ab", "X1000", "Xffffffffffffffff,ffffffffffffffff:", "cz", "s-1",
            "C", "C100", "Cxx", "C05;", "C05;zz", "S", "Hg", "Hgz", "Hg-2", "T", "Tz",
            "Z0", "Z0,1", "Z0,1,", "Z0,,1", "Zx,1,1", "Z0,10000000000000000,1", "z0,1,1,1",
            "vCont;", "vCont;x", "vCont;c:", "vCont;c:zz", "vCont;C", "vCont;C100", "vCont;cc", "vCont;r", "vCont;r1", "vCont;r1,", "vCont;r,2", "vCont;rzz,2",
            "vCont;r1,2,3", "vCont;r10000000000000000,1", "vCont;r1,2:",
            "qXfer:features:read:target.xml", "qXfer:features:read:target.xml:0", "qXfer:features:read:target.xml:z,1",
            "qXfer:threads:read:x:0,1", "qXfer:threads:read::0,", "qThreadExtraInfo,", "qThreadExtraInfo,-1",
            "qThreadExtraInfo,0", "qRcmd,6", "qRcmd,zz",
        ]
        for text in bad {
            #expect(isMalformed(parse(text)), "\(text) should be malformed, got \(parse(text))")
        }
    }
}

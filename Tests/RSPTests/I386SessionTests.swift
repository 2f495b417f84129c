import Testing
@testable import RSP

/// A session serving the i386 view, as for an ELF32 guest: what gdb 13 does after `file
/// kernel32.elf` and `target remote`, then register reads and writes, a breakpoint and the stop.
@Suite struct I386SessionTests {
    @Test func defaultArchitectureIsX86_64() {
        let h = Harness()
        #expect(h.session.architecture == .x86_64)
        #expect(Harness(architecture: .i386).session.architecture == .i386)
    }

    @Test func gdb13I386Transcript() throws {
        let h = Harness(noAck: false, architecture: .i386)
        let t = h.target
        // Upper halves that must never show, and must be cleared by 32-bit writes.
        t.registers[1]?.gpr[0] = 0xdead_beef_0000_0001  // eax
        t.registers[1]?.gpr[2] = 0x1111_2222_3333_4444  // rcx: ecx
        t.registers[1]?.gpr[1] = 0x5555_6666_7777_8888  // rbx: ebx
        t.registers[1]?.rip = 0xffff_ffff_0010_0000
        #expect(h.send("qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;vfork-events+;exec-events+;vContSupported+;QThreadEvents+;no-resumed+;memory-tagging+;xmlRegisters=i386")
                == ["+", "PacketSize=20000;qXfer:features:read+;qXfer:threads:read+;QStartNoAckMode+;swbreak+;hwbreak+;vContSupported+"])
        #expect(h.send("QStartNoAckMode") == ["+", "OK"])
        #expect(h.send("Hg0") == ["OK"])
        let xml = try #require(h.send("qXfer:features:read:target.xml:0,1fffb").first)
        #expect(xml == "l" + TargetDescription.xml(for: .i386))
        #expect(xml.contains("<architecture>i386</architecture>"))
        #expect(!xml.contains("x86-64") && !xml.contains("rax") && !xml.contains("xmm8"))
        // eip (8), esp (4), ebp (5), 8 hex digits each.
        #expect(h.send("?") == ["T05thread:01;08:00001000;04:00700000;05:f07f0000;"])
        let g = try #require(h.send("g").first)
        #expect(g.count == 2 * 376)
        #expect(g.count == 2 * RegisterLayout.i386.gPacketByteCount)
        // eax ecx edx ebx esp ebp esi edi eip eflags.
        let first10: [String] = ["01000000", "44443333", "03000000", "88887777", "00700000", "f07f0000",
                                 "04000000", "05000000", "00001000", "02020000"]
        #expect(g.hasPrefix(first10.joined()))
        #expect(h.send("p8") == ["00001000"])
        #expect(h.send("p4") == ["00700000"])
        #expect(h.send("p0") == ["01000000"])
        #expect(h.send("p2f") == ["00000000"])  // efer
        #expect(h.send("p47") == ["E01"])
        // A 32-bit write zero-extends into the 64-bit field.
        #expect(h.send("P0=78563412") == ["OK"])
        #expect(t.registers[1]?.gpr[0] == 0x1234_5678)
        #expect(h.send("P8=10001000") == ["OK"])
        #expect(t.registers[1]?.rip == 0x0010_0010)
        #expect(h.send("P0=0000000000000000") == ["E01"])
        #expect(h.send("p0") == ["78563412"])
        // A full G in the i386 layout: what it shows is zero-extended, what it does not show
        // (r8-r15 here) keeps its value.
        var expected = try #require(t.registers[1])
        for i in 0..<8 { expected.gpr[i] &= 0xffff_ffff }
        expected.gpr[1] = 0xabcd  // ebx
        expected.gpr[7] = 0x8000  // esp
        var raw = try #require(Hex.decode(Array(g.utf8)[...]))
        raw[12..<16] = [0xcd, 0xab, 0, 0]
        raw[16..<20] = [0, 0x80, 0, 0]
        raw[0..<4] = [0x78, 0x56, 0x34, 0x12]
        raw[32..<36] = [0x10, 0, 0x10, 0]
        #expect(h.send("G" + String(decoding: Hex.encode(raw), as: UTF8.self)) == ["OK"])
        #expect(t.registers[1]?.gpr[2] == 0x3333_4444)  // ecx came back zero-extended
        #expect(t.registers[1]?.gpr[8] == 0x1_0000_0008)
        #expect(t.registers[1] == expected)
        #expect(h.send("G" + String(repeating: "00", count: 377)) == ["E01"])
        // Breakpoint, continue, hit on thread 2.
        #expect(h.send("Z0,100003,1") == ["OK"])
        #expect(h.send("vCont;c:-1") == [])
        t.registers[2]?.rip = 0x100003
        #expect(h.stopped(.stopped(thread: 2, signal: 5, reason: .softwareBreakpoint))
                == ["T05thread:02;swbreak:;08:03001000;04:00700000;05:f07f0000;"])
        // `c addr` moves eip.
        #expect(h.send("Hc2") == ["OK"])
        #expect(h.send("c100020") == [])
        #expect(t.registers[2]?.rip == 0x100020)
    }
}

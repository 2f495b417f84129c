import Testing
@testable import RSP

/// The session with a guest CPU's extensions: what each register packet asks the target to
/// fetch, the AVX/AVX-512/PKRU and system registers on the wire, and refusals that name the
/// register.
@Suite struct RegisterExtensionSessionTests {
    func session(_ extensions: RegisterExtensions = .all, architecture: TargetArchitecture = .x86_64)
        -> (Session, FakeTarget) {
        let target = FakeTarget()
        target.registers[1] = sampleRegisters()
        let session = Session(target: target, architecture: architecture, extensions: extensions)
        _ = session.receive(gdbPacket("QStartNoAckMode"))
        return (session, target)
    }

    func send(_ session: Session, _ payload: String) -> [String] {
        parseStubOutput(session.receive(gdbPacket(payload))) ?? ["<bad framing>"]
    }

    @Test func stopsAndGFetchNoMSRs() throws {
        let (s, t) = session()
        let layout = RegisterLayout.of(.x86_64, extensions: .all)
        // The stop reply reads only what stopRegisters serves.
        #expect(send(s, "?").first?.hasPrefix("T05thread:01;10:") == true)
        #expect(t.partsRead.isEmpty)
        let g = try #require(send(s, "g").first)
        #expect(g.count == 2 * layout.gPacketByteCount)
        #expect(t.partsRead == [[.general, .vector]])
        // A `p` of an MSR asks for the MSRs alone, of a debug register for those alone.
        let lstar = try #require(layout.registers.firstIndex { $0.name == "lstar" })
        // sampleRegisters' lstar: 0xffffffff81000082, little-endian.
        #expect(send(s, "p" + String(lstar, radix: 16)) == ["82000081ffffffff"])
        let dr7 = try #require(layout.registers.firstIndex { $0.name == "dr7" })
        #expect(send(s, "p" + String(dr7, radix: 16)) == ["0104000000000000"])
        #expect(t.partsRead.suffix(2) == [.msrs, .debug])
    }

    @Test func vectorExtensionsOnTheWire() throws {
        let (s, t) = session()
        let layout = RegisterLayout.of(.x86_64, extensions: .all)
        func regnum(_ name: String) throws -> String {
            String(try #require(layout.registers.firstIndex { $0.name == name }), radix: 16)
        }
        let sample = sampleRegisters()
        #expect(send(s, "p" + (try regnum("ymm1h"))) == [String(decoding: Hex.encode(sample.ymmh[1]), as: UTF8.self)])
        #expect(send(s, "p" + (try regnum("zmm31h"))) == [String(decoding: Hex.encode(sample.zmmh[31]), as: UTF8.self)])
        #expect(send(s, "p" + (try regnum("k1"))) == ["0202020202020202"])
        #expect(send(s, "p" + (try regnum("pkru"))) == ["54555555"])
        #expect(send(s, "P" + (try regnum("ymm15h")) + "=" + String(repeating: "ab", count: 16)) == ["OK"])
        #expect(t.registers[1]?.ymmh[15] == [UInt8](repeating: 0xab, count: 16))
        #expect(send(s, "P" + (try regnum("xmm31")) + "=" + String(repeating: "cd", count: 16)) == ["OK"])
        #expect(t.registers[1]?.xmm[31] == [UInt8](repeating: 0xcd, count: 16))
        // Wrong sizes are refused.
        #expect(send(s, "P" + (try regnum("zmm0h")) + "=" + String(repeating: "00", count: 16)) == ["E01"])
        // target.xml is the one for these extensions.
        let xml = try #require(send(s, "qXfer:features:read:target.xml:0,1fffb").first)
        #expect(xml.contains("org.gnu.gdb.i386.avx512") && xml.contains("name=\"pkru\"") && xml.contains("name=\"spec_ctrl\""))
    }

    @Test func baselineCPUHasNoVectorExtensions() throws {
        let (s, _) = session(.none)
        let xml = try #require(send(s, "qXfer:features:read:target.xml:0,1fffb").first)
        #expect(!xml.contains("ymm0h") && !xml.contains("avx") && !xml.contains("pkru"))
        #expect(xml.contains("name=\"lstar\"") && xml.contains("name=\"gdtr_base\"") && xml.contains("name=\"dr7\""))
    }

    @Test func refusedWritesNameTheRegister() throws {
        let (s, t) = session()
        t.writeFailure = .message("KVM_SET_SREGS failed: Invalid argument")
        let layout = RegisterLayout.of(.x86_64, extensions: .all)
        let cr4 = String(try #require(layout.registers.firstIndex { $0.name == "cr4" }), radix: 16)
        // Even without error-message+ in qSupported (gdb 13): gdb shows the text.
        #expect(send(s, "P\(cr4)=ffffff0000000000") == [
            "E.cr4: the CPU refused 0xffffff (KVM_SET_SREGS failed: Invalid argument)"])
        // A G names what it changed.
        var changed = sampleRegisters()
        changed.cr0 = 0x1
        changed.efer = 0
        let g = String(decoding: Hex.encode(changed.rawBytes(in: layout)), as: UTF8.self)
        #expect(send(s, "G" + g) == ["E.cr0, efer: the CPU refused 0x1, 0x0 (KVM_SET_SREGS failed: Invalid argument)"])
        // Other failures keep their errno reply.
        t.writeFailure = .errno(3)
        #expect(send(s, "P\(cr4)=0000000000000000") == ["E03"])
    }

    @Test func i386ViewKeepsInStep() throws {
        let (s, _) = session(.all, architecture: .i386)
        let layout = RegisterLayout.of(.i386, extensions: .all)
        let names = layout.registers.map(\.name)
        #expect(names.contains("ymm7h") && names.contains("zmm7h") && names.contains("k0") && names.contains("pkru"))
        let gdtr = String(try #require(names.firstIndex(of: "gdtr_base")), radix: 16)
        // The low half of the 64-bit base.
        #expect(send(s, "p" + gdtr) == ["00100000"])
        let sysenterEIP = String(try #require(names.firstIndex(of: "sysenter_eip")), radix: 16)
        // MSRs stay 64-bit in the i386 view: sysenter_eip is 0xffffffff81000176.
        #expect(send(s, "p" + sysenterEIP) == ["76010081ffffffff"])
    }
}

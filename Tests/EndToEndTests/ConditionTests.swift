import Foundation
import Glibc
import Testing

/// Target-side breakpoint conditions and agent dprintf with the real gdb, on guests/conditions.c:
/// gdb compiles each condition to bytecode, gdbvmm decides every hit on the vCPU's thread, and
/// only true conditions reach gdb.
@Suite("breakpoint conditions and dprintf", .serialized,
       .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct ConditionTests {
    /// A local, 10,000 false hits, then the true one: the value at the stop and the guest's own
    /// running sum prove every false hit ran on, and gdb counts only the hit it saw.
    static let localCondition = """
        break hot if i == 10000
        continue
        print i
        print total
        info breakpoints
        delete
        continue
        """

    static func checkLocalCondition(_ o: SessionOutcome) {
        expectInOrder(o.gdb.stdout, ["Breakpoint 1, hot (i=10000)", "$1 = 10000", "$2 = 49995000",
                                     "stop only if i == 10000 (target evals)", "breakpoint already hit 1 time",
                                     "exited with code 041"])
        #expect(o.vmmStatus == 33)
    }

    @Test("a condition on a local: 10,000 false hits decided in the VMM, then the true one")
    func localCondition() throws {
        Self.checkLocalCondition(try debugSession("conditions", Self.localCondition))
    }

    @Test("conditions on a global, a pointer dereference and a register")
    func globalsPointersRegisters() throws {
        let o = try debugSession("conditions", """
            break hot if total > 100000
            continue
            print i
            delete
            break visit if it->key == 33 && round == 1
            continue
            print round
            print it->label
            delete
            break with_reg if $rdi == 5
            continue
            print x
            delete
            continue
            """)
        // 0 + 1 + ... + 447 = 100128 is the first sum above 100000.
        expectInOrder(o.gdb.stdout, ["Breakpoint 1, hot (i=448)", "$1 = 448",
                                     "Breakpoint 2, visit (", "$2 = 1", "\"gamma\"",
                                     "Breakpoint 3, with_reg (x=5)", "$4 = 5",
                                     "exited with code 041"])
        #expect(o.vmmStatus == 33)
    }

    @Test("two conditions at one address are ORed; gdb re-sends the list when one goes")
    func severalConditionsOnOneAddress() throws {
        let o = try debugSession("conditions", """
            break visit if it->key == 33
            break visit if round == 2
            continue
            print it->key
            print round
            continue
            print it->key
            print round
            continue
            print it->key
            print round
            delete 2
            continue
            print it->key
            print round
            delete
            continue
            """)
        // (33, round 0), (33, round 1), then round 2 starts with key 11; without the second
        // condition, the next stop is (33, round 2).
        expectInOrder(o.gdb.stdout, ["$1 = 33", "$2 = 0", "$3 = 33", "$4 = 1", "$5 = 11", "$6 = 2",
                                     "$7 = 33", "$8 = 2", "exited with code 041"])
        #expect(o.vmmStatus == 33)
    }

    static let dprintfScript = """
        set dprintf-style agent
        dprintf report,"x=%d y=%lx s=%s\\n", a, b, s
        continue
        """

    static let dprintfText = "x=0 y=100 s=alpha\nx=1 y=101 s=beta\nx=2 y=102 s=gamma\nx=3 y=103 s=delta\nx=4 y=104 s=alpha\n"

    static func checkDprintf(_ o: SessionOutcome) {
        // The exact text, once (gdb prints target output on stderr), and the guest ran to its
        // end without a stop.
        expectInOrder(o.gdb.stdout, ["Dprintf 1 at", "exited with code 041"])
        #expect(o.gdb.stderr.contains(dprintfText), "\(o.gdb.stderr)")
        #expect(o.gdb.output.components(separatedBy: "x=0 y=100").count == 2)
        #expect(!o.gdb.stdout.contains("report (a="), "the guest stopped at the dprintf:\n\(o.gdb.stdout)")
        #expect(o.vmmStatus == 33)
    }

    @Test("agent dprintf with several arguments and a %s through guest memory, without stopping")
    func agentDprintf() throws {
        Self.checkDprintf(try debugSession("conditions", Self.dprintfScript))
    }

    @Test("with every debug register taken by hbreaks, a condition still stops where it is true")
    func conditionOnAnInt3() throws {
        let o = try debugSession("conditions", """
            set breakpoint always-inserted on
            hbreak *0x1
            hbreak *0x2
            hbreak *0x3
            hbreak *0x4
            break hot if i == 50
            continue
            print i
            delete
            continue
            """)
        expectInOrder(o.gdb.stdout, ["Breakpoint 5, hot (i=50)", "$1 = 50", "exited with code 041"])
        #expect(o.vmmStatus == 33)
    }

    @Test("with every debug register taken by hbreaks, dprintf still prints and runs on")
    func dprintfOnAnInt3() throws {
        let o = try debugSession("conditions", """
            set breakpoint always-inserted on
            hbreak *0x1
            hbreak *0x2
            hbreak *0x3
            hbreak *0x4
            """ + "\n" + Self.dprintfScript)
        expectInOrder(o.gdb.stdout, ["Dprintf 5 at", "exited with code 041"])
        #expect(o.gdb.stderr.contains(Self.dprintfText), "\(o.gdb.stderr)")
        #expect(!o.gdb.stdout.contains("report (a="))
        #expect(o.vmmStatus == 33)
    }

    @Test("hbreaks gdb asks for take the debug register a conditional breakpoint had")
    func hardwareBreakpointsTakePrecedence() throws {
        let o = try debugSession("conditions", """
            set breakpoint always-inserted on
            break hot if i == 300
            hbreak visit
            hbreak with_reg
            hbreak report
            hbreak *0x1
            continue
            print i
            delete
            continue
            """)
        // All four hbreaks fit although the condition had a debug register first: it went back
        // to an int3 and still stops where it is true.
        expectInOrder(o.gdb.stdout, ["Hardware assisted breakpoint 5", "Breakpoint 1, hot (i=300)", "$1 = 300",
                                     "exited with code 041"])
        #expect(!o.gdb.output.contains("Cannot insert"))
        #expect(o.vmmStatus == 33)
    }

    @Test("two vCPUs: one vCPU's false hits run on while the other's true hit stops everything")
    func severalVCPUs() throws {
        let o = try debugSession("smp", """
            break cpu_work if cpu == 1 && ticks[1] == 300
            continue
            print ticks[1]
            print cpu
            print ticks[0] > 0
            delete
            set var stop_all = 1
            continue
            """, vmmArguments: ["--cpus", "2"])
        expectInOrder(o.gdb.stdout, ["Thread 2 \"vCPU 1\" hit Breakpoint 1, cpu_work (cpu=1)", "$1 = 300", "$2 = 1",
                                     "$3 = 1", "exited with code 05"])
        #expect(o.vmmStatus == 5, "stderr: \(o.vmmStderr)")
    }

    @Test("Ctrl-C while a never-true condition is hit over and over")
    func interruptDuringFalseHits() throws {
        let o = try debugSession("conditions", """
            break hot if i == 99999999
            \(Harness.interruptOnceResumed)
            continue
            print $pc != 0
            delete
            continue
            """)
        expectInOrder(o.gdb.stdout, ["received signal SIGINT", "$1 = 1", "exited with code 041"])
        #expect(o.vmmStatus == 33)
    }

    @Test("bad bytecode from a raw client gets an error reply, and the session goes on")
    func badBytecodeOverRawSocket() throws {
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "--serial", "none", Harness.guest("conditions")])
        let peer = try Peer(port: try #require(vmm.port))
        peer.packet("QStartNoAckMode")
        _ = peer.read(until: "#")
        peer.packet("qSupported:swbreak+")
        #expect(peer.read(until: "#").contains("ConditionalBreakpoints+;BreakpointCommands+"))
        for bad in ["Z0,100067,1;X1,ff", "Z0,100067,1;X2,2227", "Z0,100067,1;X3,02", "Z0,100067,1;X2,02",
                    "Z0,100067,1;X5,2100ff0027", "Z0,100067,1;cmds:0,X4,34000000", "Z1,100067,1;X1,27"] {
            peer.packet(bad)
            let reply = peer.read(until: "#")
            #expect(reply.contains("$E"), "\(bad): \(reply)")
        }
        // A good one right after.
        peer.packet("Z0,100067,1;X3,220127")
        #expect(peer.read(until: "#").contains("$OK"))
        peer.packet("m100067,1")
        #expect(!peer.read(until: "#").contains("$E"))
        peer.packet("k")
        #expect(vmm.wait(timeout: 30) == 0)
    }

    /// gdb 18.1 from PyPI (scripts/newer-debuggers), nil (with a warning) where it cannot be had.
    static let newerGDB: String? = {
        let result = Harness.run(["scripts/newer-debuggers"], timeout: 600)
        let dir = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0, access(dir + "/gdb", X_OK) == 0 else {
            Harness.warn("scripts/newer-debuggers failed: the gdb 18 condition tests are SKIPPED\n\(result.stderr)")
            return nil
        }
        return dir + "/gdb"
    }()

    func newerSession(_ commands: String) throws -> SessionOutcome? {
        guard let gdb = Self.newerGDB else { return nil }
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", Harness.guest("conditions")])
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-cond-\(UUID().uuidString).gdb")
        try ("set pagination off\nset confirm off\ntarget remote \(vmm.gdbTarget)\n" + commands + "\n")
            .write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let result = Harness.run([gdb, "-nx", "-batch", "-x", script.path, Harness.guest("conditions")], timeout: 120)
        let status = vmm.wait(timeout: 60)
        return SessionOutcome(gdb: result, vmmStatus: status, vmmStdout: vmm.stdout, vmmStderr: vmm.stderrText)
    }

    @Test("gdb 18: the same condition and dprintf")
    func newerGDB() throws {
        guard let condition = try newerSession(Self.localCondition) else { return }
        Self.checkLocalCondition(condition)
        guard let dprintf = try newerSession(Self.dprintfScript) else { return }
        Self.checkDprintf(dprintf)
    }
}

import CKVM
import Foundation
import Testing
@testable import KVMRunLoop

/// A debug-register breakpoint whose agent says run on is stepped past on the vCPU's own thread
/// (disarmed for one step, then re-armed): nothing is posted until a hit that stops.
@Suite("breakpoint agents on the vCPU thread", .serialized)
struct BreakpointAgentTests {
    let posted = PostedStops()
    let env = FakeEnvironment()

    static let hit = VMExit.debug(exception: 1, pc: 0x100067, dr6: 1, dr7: 0x402)
    static let stepped = VMExit.debug(exception: 1, pc: 0x10006b, dr6: 1 << 14, dr7: 0x402)
    static let armed = UInt32(KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP)
    static let stepping = UInt32(KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP | KVM_GUESTDBG_BLOCKIRQ)

    func run(_ script: [VMExit], mode: RunMode = .run) -> ScriptedVCPU {
        #expect(KickSignal.installed)
        let backend = ScriptedVCPU(script: script)
        let posted = self.posted
        let thread = VCPUThread(backend: backend, environment: env, statistics: nil, post: { _, stop in posted.post(stop) })
        thread.start()
        var plan = RunPlan(mode: mode, debugFlags: Self.armed, debugRegs: [0x100067, 0, 0, 0, 0, 0, 0, 0x402],
                           hardwareBreakpoints: [0x100067], blockIRQ: true, watchByStepping: false)
        plan.mode = mode
        thread.resume(plan)
        thread.waitUntilParked()
        thread.finish()
        return backend
    }

    @Test("two false hits run on, the third stops; each false hit is one disarmed step")
    func falseHitsRunOn() {
        env.agentVerdicts = [true, true, false]
        let backend = run([Self.hit, Self.stepped, Self.hit, Self.stepped, Self.hit, .hlt])
        #expect(posted.all == [.hardwareBreakpoint(slot: 0)])
        #expect(env.agentCalls == 3)
        // Armed, then per false hit: disarmed single step, re-armed.
        #expect(backend.snapshot.guestDebug == [Self.armed, Self.stepping, Self.armed, Self.stepping, Self.armed])
        #expect(backend.snapshot.runs == 5)
    }

    @Test("a run on after the step reaches the guest's end")
    func runsToTheEnd() {
        env.agentVerdicts = [true]
        _ = run([Self.hit, Self.stepped, .hlt])
        #expect(posted.all == [.halted])
    }

    @Test("while gdb single-steps, a hit is never decided by the agent")
    func notWhileStepping() {
        env.agentVerdicts = [true]
        _ = run([Self.hit], mode: .step)
        #expect(env.agentCalls == 0)
        #expect(posted.all == [.hardwareBreakpoint(slot: 0)])
    }

    @Test("a kick during the disarmed step parks the vCPU, still on the breakpoint")
    func kickDuringStep() {
        env.agentVerdicts = [true]
        // No exit after the hit: the step "runs" until the kick.
        let backend = ScriptedVCPU(script: [Self.hit])
        let posted = self.posted
        let thread = VCPUThread(backend: backend, environment: env, statistics: nil, post: { _, stop in posted.post(stop) })
        thread.start()
        thread.resume(RunPlan(mode: .run, debugFlags: Self.armed, debugRegs: [0x100067, 0, 0, 0, 0, 0, 0, 0x402],
                              hardwareBreakpoints: [], blockIRQ: true, watchByStepping: false))
        while backend.snapshot.runs < 2 { usleep(1000) }
        thread.requestPause()
        thread.waitUntilParked()
        thread.finish()
        #expect(posted.all == [.interrupted])
    }
}

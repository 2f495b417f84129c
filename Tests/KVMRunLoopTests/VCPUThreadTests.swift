import CKVM
import Foundation
import Glibc
import Testing
@testable import KVMRunLoop

/// The vCPU thread's state machine with scripted exits: runs end in exactly one posted stop,
/// kicks are honoured wherever they land, probes and jobs are answered on the vCPU's thread.
@Suite("vCPU thread", .serialized)
struct VCPUThreadTests {
    let posted = PostedStops()
    let env = FakeEnvironment()

    func makeThread(_ backend: ScriptedVCPU, longStop: UInt64 = 1_000_000_000) -> VCPUThread<ScriptedVCPU> {
        #expect(KickSignal.installed)
        let posted = self.posted
        let thread = VCPUThread(backend: backend, environment: env, statistics: nil, longStopNanoseconds: longStop,
                                post: { _, stop in posted.post(stop) })
        thread.start()
        return thread
    }

    static let plan = RunPlan(mode: .run, debugFlags: 0, debugRegs: Array(repeating: 0, count: 8),
                              hardwareBreakpoints: [], blockIRQ: true, watchByStepping: false)

    func plan(_ mode: RunMode) -> RunPlan {
        var p = Self.plan
        p.mode = mode
        return p
    }

    @Test("a run serves device exits itself and posts one stop when it ends")
    func runToHalt() {
        let backend = ScriptedVCPU(script: [.io(IOAccess(isOut: true, port: 0x3F8, size: 1, data: [0x68])),
                                            .io(IOAccess(isOut: false, port: 0x3FD, size: 1)), .hlt])
        let thread = makeThread(backend)
        thread.resume(plan(.run))
        thread.waitUntilParked()
        #expect(posted.all == [.halted])
        #expect(backend.snapshot.ioReads == [[0x5A]])
        #expect(env.writes.map(\.1) == [[0x68]])
        thread.finish()
        #expect(thread.currentState == .finished)
    }

    @Test("the guest hears of a long stop before it runs again (kvmclock's paused flag); not of a short one, nor before its first run",
          arguments: [(UInt64(0), 2), (UInt64(3_600_000_000_000), 0)])
    func longStopsAreAnnounced(longStop: UInt64, notifications: Int) {
        let backend = ScriptedVCPU(script: [.hlt, .hlt, .hlt])
        let thread = makeThread(backend, longStop: longStop)
        for _ in 0..<3 {
            thread.resume(plan(.run))
            thread.waitUntilParked()
        }
        #expect(posted.all == [.halted, .halted, .halted])
        #expect(backend.pauseNotifications == notifications)
        thread.finish()
    }

    @Test("a pause before the vCPU enters KVM_RUN, inside it, and while an exit is handled: never lost")
    func kicksAnywhere() {
        // Inside KVM_RUN (the script is empty: the "guest" runs until kicked).
        let inside = ScriptedVCPU(script: [])
        let t1 = makeThread(inside)
        t1.resume(plan(.run))
        t1.requestPause()
        t1.waitUntilParked()
        #expect(posted.all == [.interrupted])
        t1.finish()

        // While an exit is handled: the kick lands in the device callback.
        let handling = ScriptedVCPU(script: [.io(IOAccess(isOut: true, port: 0xE9, size: 1, data: [1]))])
        let t2 = makeThread(handling)
        env.onPortIO = { t2.requestPause() }
        t2.resume(plan(.run))
        t2.waitUntilParked()
        env.onPortIO = nil
        #expect(posted.all == [.interrupted, .interrupted])
        // The exit was served, and no further exit was taken from the script after the kick.
        #expect(env.writes.count == 1)
        t2.finish()

        // Before the first entry: immediate_exit makes that entry return at once.
        let before = ScriptedVCPU(script: [.hlt])
        let t3 = makeThread(before)
        before.beforeRun = { n in if n == 1 { t3.requestPause() } }
        t3.resume(plan(.run))
        t3.waitUntilParked()
        #expect(posted.all == [.interrupted, .interrupted, .interrupted])
        t3.finish()
    }

    @Test("a fair pause lets a vCPU that has not entered the guest yet run its quantum first")
    func fairPause() {
        let backend = ScriptedVCPU(script: [])
        let thread = makeThread(backend)
        // Paused before its thread even picked up the run: the kick waits for the entry.
        thread.resume(plan(.run))
        thread.requestPause(immediately: false)
        let start = DispatchTime.now().uptimeNanoseconds
        thread.completePause(quantum: 2_000_000)
        thread.waitUntilParked()
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        #expect(posted.all == [.interrupted])
        #expect(backend.snapshot.runs >= 1, "the vCPU entered the guest before it parked")
        #expect(elapsed >= 2_000_000, "it ran its quantum: \(elapsed) ns")
        // Once it has entered, a fair pause kicks at once.
        thread.resume(plan(.run))
        let deadline = Date().addingTimeInterval(5)
        while backend.snapshot.runs < 2 && Date() < deadline { usleep(100) }
        #expect(backend.snapshot.runs >= 2)
        thread.requestPause(immediately: false)
        thread.waitUntilParked()
        #expect(posted.all == [.interrupted, .interrupted])
        thread.finish()
    }

    @Test("a probe is answered while the vCPU runs on; it keeps running until paused")
    func probe() {
        let backend = ScriptedVCPU(script: [])
        backend.mpState = UInt32(KVM_MP_STATE_HALTED)
        let thread = makeThread(backend)
        thread.resume(plan(.run))
        #expect(thread.probeHalted() == true)
        #expect(thread.currentState == .running)
        backend.regs.rflags = 0x202   // IF set: an interrupt could still wake it
        #expect(thread.probeHalted() == false)
        #expect(posted.all.isEmpty)
        thread.requestPause()
        thread.waitUntilParked()
        #expect(thread.probeHalted() == nil)
        #expect(posted.all == [.interrupted])
        thread.finish()
    }

    @Test("stepping over port output completes it with one re-entry and reports the step")
    func stepOverOut() {
        let backend = ScriptedVCPU(script: [.io(IOAccess(isOut: true, port: 0xE9, size: 1, data: [0x41]))])
        let thread = makeThread(backend)
        thread.resume(plan(.step))
        thread.waitUntilParked()
        #expect(posted.all == [.stepped])
        let s = backend.snapshot
        #expect(s.runs == 2)          // the exit, then the completing re-entry
        #expect(s.kicks == 1)         // immediate_exit for that re-entry
        #expect(s.guestDebug.last.map { $0 & UInt32(KVM_GUESTDBG_SINGLESTEP) != 0 } == true)
        thread.finish()
    }

    @Test("an FWAIT KVM could not emulate: RIP moves past it and the run goes on")
    func fwaitCompleted() {
        env.code = [0x9B]
        let backend = ScriptedVCPU(script: [.internalError(suberror: UInt32(KVM_INTERNAL_ERROR_EMULATION), data: []), .hlt])
        backend.regs.rip = 0x4000
        let thread = makeThread(backend)
        thread.resume(plan(.run))
        thread.waitUntilParked()
        env.code = [0xF3, 0x48, 0x0F, 0xB8, 0xC7]
        #expect(posted.all == [.halted])
        #expect(thread.registers?.regs.rip == 0x4001)
        thread.finish()
    }

    @Test("a watch hit finishes its instruction before it is reported; a pause meanwhile waits")
    func watchHitFinishes() {
        env.mmioHit = (.write, 0x5000)
        let backend = ScriptedVCPU(script: [.mmio(MMIOAccess(address: 0x5000, length: 4, isWrite: true, data: 9))])
        let thread = makeThread(backend)
        backend.beforeRun = { n in if n == 2 { thread.requestPause() } }
        thread.resume(plan(.run))
        thread.waitUntilParked()
        env.mmioHit = nil
        #expect(posted.all == [.watchpoint(.write, address: 0x5000)])
        thread.finish()
    }

    @Test("jobs run on the vCPU's own thread while it is parked, and see its registers")
    func jobsRunOnTheVCPUThread() throws {
        let backend = ScriptedVCPU(script: [])
        backend.regs.rip = 0x1234
        let thread = makeThread(backend)
        let caller = pthread_self()
        let (rip, sameThread) = try thread.perform { (vcpu) throws(SystemError) in
            (try vcpu.getRegs().rip, pthread_equal(pthread_self(), caller) != 0)
        }
        #expect(rip == 0x1234)
        #expect(!sameThread)
        try thread.perform { (vcpu) throws(SystemError) in
            var regs = try vcpu.getRegs()
            regs.rip = 0x2000
            try vcpu.setRegs(regs)
        }
        // The parked snapshot follows the job's change without another handoff.
        #expect(thread.registers?.regs.rip == 0x2000)
        thread.finish()
    }
}

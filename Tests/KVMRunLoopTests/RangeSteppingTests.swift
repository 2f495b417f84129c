import CKVM
import Foundation
import Testing
@testable import KVMRunLoop

// Encodings from GNU as --64 / objdump.

private func hex(_ text: String) -> [UInt8] {
    text.split(separator: " ").map { UInt8($0, radix: 16)! }
}

@Suite("range stepping: control flow of one instruction")
struct ControlFlowTests {
    func flow(_ bytes: String, rip: UInt64 = 0x1000, mode: DecodeMode = .long64) -> (Int, ControlFlow)? {
        InstructionDecoder.controlFlow(hex(bytes), mode: mode, rip: rip).map { ($0.length, $0.flow) }
    }

    @Test("straight-line instructions fall through with their length")
    func straight() {
        #expect(flow("48 01 d0")! == (3, .next))                       // add %rdx,%rax
        #expect(flow("48 8b 15 69 2f 01 00")! == (7, .next))           // mov 0x12f69(%rip),%rdx
        #expect(flow("90")! == (1, .next))
        #expect(flow("ff c0")! == (2, .next))                          // inc %eax (group 5 /0)
        #expect(flow("0f a2")! == (2, .next))                          // cpuid
    }

    @Test("relative branches: target from the end of the instruction, sign-extended; conditions fall through")
    func relative() {
        #expect(flow("75 fb")! == (2, .direct(target: 0xFFD, fallsThrough: true)))        // jne .-3
        #expect(flow("eb 10")! == (2, .direct(target: 0x1012, fallsThrough: false)))      // jmp .+0x12
        #expect(flow("e9 00 01 00 00")! == (5, .direct(target: 0x1105, fallsThrough: false)))
        #expect(flow("e8 fb ff ff ff")! == (5, .direct(target: 0x1000, fallsThrough: true)))  // call self
        #expect(flow("0f 84 f0 ff ff ff")! == (6, .direct(target: 0xFF6, fallsThrough: true)))
        #expect(flow("e2 fe")! == (2, .direct(target: 0x1000, fallsThrough: true)))       // loop self
        // 32-bit mode wraps at 4 GiB.
        #expect(flow("eb 10", rip: 0xFFFF_FFF0, mode: .protected32)! == (2, .direct(target: 0x2, fallsThrough: false)))
    }

    @Test("indirect branches, returns, interrupts, system calls, hlt, CR writes go anywhere")
    func anywhere() {
        for bytes in ["c3", "c2 08 00", "cb", "48 cf", "ff d0", "ff 20", "ff e0", "ff 15 00 00 00 00",
                      "cc", "cd 80", "f4", "0f 05", "0f 07", "0f 0b", "0f 22 d8", "0f 01 d9"] {
            #expect(flow(bytes)?.1 == .anywhere, "\(bytes)")
        }
        #expect(flow("cc")?.0 == 1)
        #expect(flow("cd 80")?.0 == 2)
    }

    @Test("what the decoder does not know, or truncated bytes: nil (stepped)")
    func unknown() {
        #expect(flow("c5 f8 77") == nil)        // vzeroupper (VEX)
        #expect(flow("e8 00 00") == nil)        // truncated call
        #expect(flow("66 e9 00 00") == nil)     // near branch with 66 in 64-bit mode
        #expect(flow("") == nil)
    }
}

@Suite("range stepping: analysis of a range")
struct RangeAnalysisTests {
    // 0x1000 add %rdx,%rax; 0x1003 jne 0x1000; 0x1005 call 0x2000; 0x100a ret
    let loopCallRet = hex("48 01 d0 75 fb e8 f6 0f 00 00 c3")

    @Test("jumps inside stay unstepped; a call out and a ret are exits; ret ends the fall-through")
    func exits() {
        let a = RangeAnalysis(code: loopCallRet, from: 0x1000, start: 0x1000, end: 0x100B, mode: .long64)
        #expect(a.instructions == [0x1000, 0x1003, 0x1005, 0x100A])
        #expect(a.exits == [0x1005, 0x100A])
        #expect(a.transfers == [0x1003, 0x1005, 0x100A])
        #expect(a.fallOut == nil)
        #expect(a.decision(at: 0x1000, freeSlots: 4) == .run(to: [0x1005, 0x100A]))
        #expect(a.decision(at: 0x1005, freeSlots: 4) == .step)
        // One register only: to the next jump of any kind, which is then stepped.
        #expect(a.decision(at: 0x1000, freeSlots: 1) == .run(to: [0x1003]))
        #expect(a.decision(at: 0x1003, freeSlots: 1) == .step)
        #expect(a.decision(at: 0x1000, freeSlots: 0) == .step)
    }

    @Test("straight-line code: one breakpoint where it falls out, even past the end")
    func fallOut() {
        let nops = [UInt8](repeating: 0x90, count: 64)
        let a = RangeAnalysis(code: nops, from: 0x1000, start: 0x1000, end: 0x1020, mode: .long64)
        #expect(a.exits.isEmpty)
        #expect(a.fallOut == 0x1020)
        #expect(a.decision(at: 0x1010, freeSlots: 1) == .run(to: [0x1020]))
        // An instruction that straddles the end: it falls out after itself.
        let straddle = RangeAnalysis(code: hex("90 48 8b 15 69 2f 01 00"), from: 0x1000, start: 0x1000,
                                     end: 0x1004, mode: .long64)
        #expect(straddle.fallOut == 0x1008)
    }

    @Test("a jump inside the range but not to an instruction the sweep found is an exit")
    func jumpIntoAnInstruction() {
        // 0x1000 jmp 0x1003 (into the middle of the mov at 0x1002); 0x1002 mov $0x90909090,%eax
        let code = hex("eb 01 b8 90 90 90 90")
        let a = RangeAnalysis(code: code, from: 0x1000, start: 0x1000, end: 0x1007, mode: .long64)
        #expect(a.exits == [0x1000])
        // A sweep from the pc does not know what lies before it: jumps back there are exits.
        let b = RangeAnalysis(code: Array(loopCallRet[3...]), from: 0x1003, start: 0x1000, end: 0x100B, mode: .long64)
        #expect(b.exits == [0x1003, 0x1005, 0x100A])
        #expect(!b.knows(0x1000))
        #expect(b.knows(0x1005))
    }

    @Test("the sweep stops at an instruction it cannot decode: that one is stepped")
    func undecodable() {
        // nop; vzeroupper; nop
        let a = RangeAnalysis(code: hex("90 c5 f8 77 90"), from: 0x1000, start: 0x1000, end: 0x1005, mode: .long64)
        #expect(a.instructions == [0x1000, 0x1001])
        #expect(a.exits == [0x1001])
        #expect(a.fallOut == nil)
        #expect(a.decision(at: 0x1000, freeSlots: 4) == .run(to: [0x1001]))
    }

    @Test("more exits than debug registers: run to the next jump, then step it")
    func tooManyExits() {
        // five rets separated by nops
        let code = hex("90 c3 90 c3 90 c3 90 c3 90 c3")
        let a = RangeAnalysis(code: code, from: 0x1000, start: 0x1000, end: 0x100A, mode: .long64)
        #expect(a.exits.count == 5)
        #expect(a.decision(at: 0x1002, freeSlots: 4) == .run(to: [0x1003]))
        #expect(a.decision(at: 0x1000, freeSlots: 4) == .run(to: [0x1001]))
    }
}

@Suite("range stepping: debug registers and decisions")
struct RangeStepperTests {
    @Test("free slots are those DR7 leaves disabled; arming sets enable bits and clears RW/LEN")
    func allocation() {
        var regs = [UInt64](repeating: 0, count: 8)
        regs[1] = 0x5000
        regs[7] = (2 << 2) | (1 << 10) | (0xF << 16)   // slot 1 enabled; junk RW/LEN for slot 0
        #expect(DebugRegisterAllocation.freeSlots(dr7: regs[7]) == [0, 2, 3])
        let (armed, slots) = DebugRegisterAllocation.arming([0x1000, 0x2000], in: regs)
        #expect(slots == [0, 2])
        #expect(armed[0] == 0x1000 && armed[1] == 0x5000 && armed[2] == 0x2000)
        #expect(armed[7] == (2 << 0) | (2 << 2) | (2 << 4) | (1 << 10))
        #expect(DebugRegisterAllocation.freeSlots(dr7: armed[7]) == [3])
    }

    func stepper(gdbSlot: (Int, UInt64)? = nil, stepOnly: Bool = false) -> RangeStepper {
        var regs = [UInt64](repeating: 0, count: 8)
        if let (slot, address) = gdbSlot {
            regs[slot] = address
            regs[7] = (2 << (UInt64(slot) * 2)) | (1 << 10)
        }
        return RangeStepper(start: 0x1000, end: 0x1020, debugRegs: regs, stepOnly: stepOnly)
    }

    let nops: (UInt64, Int) -> [UInt8] = { _, count in [UInt8](repeating: 0x90, count: count) }

    @Test("straight from the pc to the fall-out (linear: CS base added), report a step when the pc leaves")
    func straightLine() {
        var s = stepper()
        #expect(s.next(after: nil, rip: 0x1000, csBase: 0x10000, mode: .long64, code: nops) == .run(toLinear: [0x11020]))
        s.rangeSlots = [0]
        #expect(s.next(after: .hardwareBreakpoint(slot: 0), rip: 0x1020, csBase: 0x10000, mode: .long64, code: nops)
                == .report(.stepped))
        #expect(s.sweeps == 1)
    }

    @Test("the first piece is a step from an exit or from outside the range")
    func firstPieceSteps() {
        let ret: (UInt64, Int) -> [UInt8] = { _, count in [0xC3] + [UInt8](repeating: 0x90, count: count - 1) }
        var s = stepper()
        #expect(s.next(after: nil, rip: 0x1000, csBase: 0, mode: .long64, code: ret) == .step)
        var t = stepper()
        #expect(t.next(after: nil, rip: 0x3000, csBase: 0, mode: .long64, code: nops) == .step)
        #expect(t.next(after: .stepped, rip: 0x3001, csBase: 0, mode: .long64, code: nops) == .report(.stepped))
        #expect(t.sweeps == 0)
    }

    @Test("a step may leave the range at once; an empty range is one step")
    func leavesAtOnce() {
        var s = stepper()
        _ = s.next(after: nil, rip: 0x1000, csBase: 0, mode: .long64, code: nops)
        #expect(s.next(after: .stepped, rip: 0x3000, csBase: 0, mode: .long64, code: nops) == .report(.stepped))
        var empty = RangeStepper(start: 0x1000, end: 0x1000, debugRegs: [UInt64](repeating: 0, count: 8))
        _ = empty.next(after: nil, rip: 0x1000, csBase: 0, mode: .long64, code: nops)
        #expect(empty.next(after: .stepped, rip: 0x1001, csBase: 0, mode: .long64, code: nops) == .report(.stepped))
    }

    @Test("an exit reached at full speed is stepped; back in the range, the run goes on without a new sweep")
    func exitStepped() {
        // 0x1000 nop x4; 0x1004 ret; nops to 0x1020
        let code: (UInt64, Int) -> [UInt8] = { linear, count in
            var bytes = [UInt8](repeating: 0x90, count: 0x40)
            bytes[4] = 0xC3
            return Array(bytes[Int(linear - 0x1000)...].prefix(count))
        }
        var s = stepper()
        #expect(s.next(after: nil, rip: 0x1002, csBase: 0, mode: .long64, code: code) == .run(toLinear: [0x1004, 0x1020]))
        s.rangeSlots = [0, 1]
        #expect(s.next(after: .hardwareBreakpoint(slot: 0), rip: 0x1004, csBase: 0, mode: .long64, code: code) == .step)
        // The ret came back into the range, to an instruction the sweep knows.
        #expect(s.next(after: .stepped, rip: 0x1003, csBase: 0, mode: .long64, code: code) == .run(toLinear: [0x1004, 0x1020]))
        #expect(s.sweeps == 1)
        #expect(s.next(after: .stepped, rip: 0x1005, csBase: 0, mode: .long64, code: code) == .run(toLinear: [0x1004, 0x1020]))
        #expect(s.sweeps == 1)
        // ...or to one it does not (before where the sweep began): a new sweep from there.
        #expect(s.next(after: .stepped, rip: 0x1000, csBase: 0, mode: .long64, code: code) == .run(toLinear: [0x1004, 0x1020]))
        #expect(s.sweeps == 2)
    }

    @Test("any other stop ends the range step as it is: breakpoints, watches, Ctrl-C, crashes, gdb's debug registers")
    func otherStops() {
        let others: [VCPUStop] = [.softwareBreakpoint, .hardwareBreakpoint(slot: 2), .watchpoint(.write, address: 0x5000),
                                  .interrupted, .crash(Crash(.tripleFault, "x")), .exit(status: 3), .untrappedStepNeeded,
                                  .guestDebugTrap(exception: 1)]
        for stop in others {
            var s = stepper()
            _ = s.next(after: nil, rip: 0x1000, csBase: 0, mode: .long64, code: nops)
            _ = s.next(after: .stepped, rip: 0x1001, csBase: 0, mode: .long64, code: nops)
            s.rangeSlots = [0]
            #expect(s.next(after: stop, rip: 0x1008, csBase: 0, mode: .long64, code: nops) == .report(stop))
        }
    }

    @Test("landing on gdb's hardware breakpoint inside the range reports it; its slot is not used for exits")
    func gdbHardwareBreakpoint() {
        var s = stepper(gdbSlot: (0, 0x1008))
        _ = s.next(after: nil, rip: 0x1000, csBase: 0, mode: .long64, code: nops)
        #expect(s.next(after: .stepped, rip: 0x1008, csBase: 0, mode: .long64, code: nops) == .report(.hardwareBreakpoint(slot: 0)))
        var t = stepper(gdbSlot: (0, 0x1010))
        _ = t.next(after: nil, rip: 0x1000, csBase: 0, mode: .long64, code: nops)
        #expect(t.next(after: .stepped, rip: 0x1001, csBase: 0, mode: .long64, code: nops) == .run(toLinear: [0x1020]))
        // Our exit slot and gdb's fire together: gdb's breakpoint is what is reported.
        t.rangeSlots = [1]
        #expect(t.next(after: .hardwareBreakpoint(slot: 1), rip: 0x1010, csBase: 0, mode: .long64, code: nops)
                == .report(.hardwareBreakpoint(slot: 0)))
    }

    @Test("watches on page-table pages: every instruction is a checked step")
    func stepOnly() {
        var s = stepper(stepOnly: true)
        _ = s.next(after: nil, rip: 0x1000, csBase: 0, mode: .long64, code: nops)
        #expect(s.next(after: .stepped, rip: 0x1001, csBase: 0, mode: .long64, code: nops) == .step)
        #expect(s.sweeps == 0)
    }
}

@Suite("range stepping on the vCPU thread", .serialized)
struct RangeSteppingThreadTests {
    let posted = PostedStops()
    let env = FakeEnvironment()

    func makeThread(_ backend: ScriptedVCPU) -> VCPUThread<ScriptedVCPU> {
        #expect(KickSignal.installed)
        let posted = self.posted
        let thread = VCPUThread(backend: backend, environment: env, statistics: nil, post: { _, stop in posted.post(stop) })
        thread.start()
        return thread
    }

    func plan(_ start: UInt64, _ end: UInt64) -> RunPlan {
        RunPlan(mode: .rangeStep(start: start, end: end), debugFlags: 0, debugRegs: Array(repeating: 0, count: 8),
                hardwareBreakpoints: [], blockIRQ: true, watchByStepping: false)
    }

    @Test("a straight-line range: one run to a debug register at its end, one stop")
    func straightLine() {
        env.code = [UInt8](repeating: 0x90, count: 15)
        let backend = ScriptedVCPU(script: [.debug(exception: 1, pc: 0x1100, dr6: 0x1, dr7: 0)])
        backend.regs.rip = 0x1000
        backend.beforeRun = { [backend] _ in backend.regs.rip = 0x1100 }
        let thread = makeThread(backend)
        thread.resume(plan(0x1000, 0x1100))
        thread.waitUntilParked()
        #expect(posted.all == [.stepped])
        let run = UInt32(KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP | KVM_GUESTDBG_BLOCKIRQ)
        #expect(backend.snapshot.guestDebug == [run])
        #expect(backend.snapshot.runs == 1)
        thread.finish()
    }

    @Test("a range that starts on an exit: one step, then a run to the rest")
    func startsOnExit() {
        // A ret at every address: each is an exit, so every piece is a single step.
        env.code = [UInt8](repeating: 0xC3, count: 15)
        let backend = ScriptedVCPU(script: [.debug(exception: 1, pc: 0x1001, dr6: 0x4000, dr7: 0),
                                            .debug(exception: 1, pc: 0x2000, dr6: 0x4000, dr7: 0)])
        backend.regs.rip = 0x1000
        backend.beforeRun = { [backend] n in backend.regs.rip = n == 1 ? 0x1001 : 0x2000 }
        let thread = makeThread(backend)
        thread.resume(plan(0x1000, 0x1100))
        thread.waitUntilParked()
        #expect(posted.all == [.stepped])
        let step = UInt32(KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP | KVM_GUESTDBG_BLOCKIRQ)
        #expect(backend.snapshot.guestDebug == [step, step])
        #expect(backend.snapshot.runs == 2)
        thread.finish()
    }

    @Test("a pause while the range runs at full speed ends it as a pause")
    func paused() {
        env.code = [UInt8](repeating: 0x90, count: 15)
        let backend = ScriptedVCPU(script: [])
        backend.regs.rip = 0x1000
        let thread = makeThread(backend)
        thread.resume(plan(0x1000, 0x1100))
        // No scripted exit: the guest "runs" until kicked.
        while backend.snapshot.runs < 1 { usleep(1000) }
        thread.requestPause()
        thread.waitUntilParked()
        #expect(posted.all == [.interrupted])
        thread.finish()
    }

    @Test("a guest that ends the VM in the middle of a range: that is the stop")
    func exitInside() {
        env.code = [UInt8](repeating: 0x90, count: 15)
        env.exitOnPort = 0xF4
        let backend = ScriptedVCPU(script: [.io(IOAccess(isOut: true, port: 0xF4, size: 1, data: [3]))])
        backend.regs.rip = 0x1000
        let thread = makeThread(backend)
        thread.resume(plan(0x1000, 0x1100))
        thread.waitUntilParked()
        #expect(posted.all == [.exit(status: 7)])
        thread.finish()
    }
}

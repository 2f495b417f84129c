import CKVM
import Testing
@testable import KVMRunLoop

/// The exit handler decides, for every exit kind, without KVM.
@Suite("exit handler")
struct ExitHandlerTests {
    let env = FakeEnvironment()
    let run = ExitContext(mode: .run)
    let step = ExitContext(mode: .step)

    func handle(_ exit: VMExit, _ context: ExitContext) -> ExitAction {
        ExitHandler.handle(exit, context: context, environment: env) {
            var regs = kvm_regs()
            regs.rip = 0x1000
            return ExitRegisters(regs: regs, sregs: kvm_sregs())
        }
    }

    @Test("port output and input reach the bus; a debug-exit write ends the VM")
    func portIO() {
        #expect(handle(.io(IOAccess(isOut: true, port: 0x3F8, size: 1, data: [0x41])), run) == ExitAction(.reenter))
        #expect(env.writes.map(\.0) == [0x3F8])
        #expect(env.writes.first?.1 == [0x41])
        #expect(handle(.io(IOAccess(isOut: false, port: 0x3FD, size: 2, count: 2)), run)
                == ExitAction(.reenter, completion: .ioRead([0x5A, 0x5A, 0x5A, 0x5A])))
        env.exitOnPort = 0xF4
        #expect(handle(.io(IOAccess(isOut: true, port: 0xF4, size: 1, data: [3])), run) == ExitAction(.stop(.exit(status: 7))))
    }

    @Test("a step that exits for port I/O or MMIO completes that instruction and ends there")
    func stepOverAccesses() {
        let out = handle(.io(IOAccess(isOut: true, port: 0xE9, size: 1, data: [1])), step)
        #expect(out == ExitAction(.finishInstruction(.step)))
        var finishing = step
        finishing.finishing = .step
        // The completion comes back as EINTR (immediate_exit) here, as a step trap on VMX/SVM.
        #expect(handle(.interrupted, finishing) == ExitAction(.stop(.stepped)))
        #expect(handle(.debug(exception: 1, pc: 0, dr6: 1 << 14, dr7: 0), finishing) == ExitAction(.stop(.stepped)))
        #expect(handle(.io(IOAccess(isOut: false, port: 0x60, size: 1)), step) == ExitAction(.finishInstruction(.step), completion: .ioRead([0x5A])))
        #expect(handle(.mmio(MMIOAccess(address: 0x3000_0000, length: 4, isWrite: true, data: 1)), step) == ExitAction(.finishInstruction(.step)))
        #expect(handle(.mmio(MMIOAccess(address: 0x3000_0000, length: 4, isWrite: false)), step)
                == ExitAction(.finishInstruction(.step), completion: .mmioRead(0x1122)))
        // Stepping for checked watches or past a hardware breakpoint: the same rule.
        #expect(handle(.io(IOAccess(isOut: true, port: 0xE9, size: 1, data: [1])), ExitContext(mode: .run, watchByStepping: true))
                == ExitAction(.finishInstruction(.step)))
        #expect(handle(.io(IOAccess(isOut: true, port: 0xE9, size: 1, data: [1])), ExitContext(mode: .run, steppingOver: true))
                == ExitAction(.finishInstruction(.step)))
    }

    @Test("a watch hit is reported once the accessing instruction has completed")
    func watchHits() {
        env.mmioHit = (.write, 0xFFFF_8000_0000_1000)
        let write = MMIOAccess(address: 0x1000, length: 8, isWrite: true, data: 5)
        #expect(handle(.mmio(write), run) == ExitAction(.finishInstruction(.report(.watchpoint(.write, address: 0xFFFF_8000_0000_1000)))))
        var finishing = run
        finishing.finishing = .report(.watchpoint(.write, address: 0xFFFF_8000_0000_1000))
        // An instruction with two accesses: the second is completed too, the first hit is kept.
        env.mmioHit = (.read, 0x2000)
        #expect(handle(.mmio(MMIOAccess(address: 0x2000, length: 8, isWrite: false)), finishing)
                == ExitAction(.finishInstruction(.report(.watchpoint(.write, address: 0xFFFF_8000_0000_1000))), completion: .mmioRead(0x1122)))
        #expect(handle(.interrupted, finishing) == ExitAction(.stop(.watchpoint(.write, address: 0xFFFF_8000_0000_1000))))
        env.mmioHit = nil
        #expect(handle(.mmio(MMIOAccess(address: 0x2000, length: 4, isWrite: false)), run) == ExitAction(.reenter, completion: .mmioRead(0x1122)))
    }

    @Test("HLT: halted when running, a finished step when stepping")
    func hlt() {
        #expect(handle(.hlt, run) == ExitAction(.stop(.halted)))
        #expect(handle(.hlt, step) == ExitAction(.stop(.stepped)))
    }

    @Test("#DB: hardware breakpoints by DR6 slot, single steps, stepping past a breakpoint, checked steps")
    func debugTraps() {
        #expect(handle(.debug(exception: 1, pc: 0, dr6: 0b0100, dr7: 0), run) == ExitAction(.stop(.hardwareBreakpoint(slot: 2))))
        #expect(handle(.debug(exception: 1, pc: 0, dr6: 1 << 14, dr7: 0), step) == ExitAction(.stop(.stepped)))
        let over = ExitContext(mode: .run, steppingOver: true)
        #expect(handle(.debug(exception: 1, pc: 0, dr6: (1 << 14) | 1, dr7: 0), over) == ExitAction(.steppedOver))
        #expect(handle(.debug(exception: 1, pc: 0, dr6: 1 << 14, dr7: 0), ExitContext(mode: .run, watchByStepping: true))
                == ExitAction(.checkWatchStep))
        #expect(handle(.debug(exception: 1, pc: 0, dr6: 1 << 14, dr7: 0), ExitContext(mode: .step, untrappedStep: true))
                == ExitAction(.checkWatchStep))
        #expect(handle(.debug(exception: 1, pc: 0, dr6: 0, dr7: 0), run) == ExitAction(.stop(.guestDebugTrap(exception: 1))))
        #expect(handle(.debug(exception: 6, pc: 0, dr6: 0, dr7: 0), run) == ExitAction(.stop(.guestDebugTrap(exception: 6))))
    }

    @Test("#BP: ours stops, the guest's own goes to its IDT")
    func breakpointTraps() {
        env.owner = .debugger
        #expect(handle(.debug(exception: 3, pc: 0x1000, dr6: 0, dr7: 0), run) == ExitAction(.stop(.softwareBreakpoint)))
        env.owner = .guest
        #expect(handle(.debug(exception: 3, pc: 0x1000, dr6: 0, dr7: 0), run) == ExitAction(.deliverGuestBreakpoint(advanceRIP: false)))
    }

    @Test("emulation failures: our int3, the guest's int3, a trapped page, a real failure")
    func emulationFailures() {
        let failure = VMExit.internalError(suberror: UInt32(KVM_INTERNAL_ERROR_EMULATION), data: [])
        env.owner = .debugger
        #expect(handle(failure, run) == ExitAction(.stop(.softwareBreakpoint)))
        env.owner = .guest
        #expect(handle(failure, run) == ExitAction(.deliverGuestBreakpoint(advanceRIP: true)))
        env.owner = .none
        env.watches = true
        #expect(handle(failure, run) == ExitAction(.stop(.untrappedStepNeeded)))
        guard case .stop(.crash(let crash)) = handle(failure, ExitContext(mode: .step, untrappedStep: true)).next else {
            Issue.record("an emulation failure with the traps lifted must be a crash"); return
        }
        #expect(crash.kind == .emulationFailure)
        #expect(crash.detail.contains("0x1000"))
        env.watches = false
        guard case .stop(.crash(let plain)) = handle(failure, run).next else { Issue.record("expected a crash"); return }
        #expect(plain.kind == .emulationFailure)
        // The report names the instruction.
        #expect(plain.detail == "KVM could not emulate the instruction at rip 0x1000: popcnt (f3 48 0f b8 c7)")
        guard case .stop(.crash(let other)) = handle(.internalError(suberror: 3, data: [0xAB]), run).next else {
            Issue.record("expected a crash"); return
        }
        #expect(other.kind == .internalError && other.detail.contains("0xab"))
    }

    @Test("an FWAIT the emulator could not run is completed by gdbvmm, also when stepping")
    func fwait() {
        let failure = VMExit.internalError(suberror: UInt32(KVM_INTERNAL_ERROR_EMULATION), data: [])
        env.code = [0x9B, 0x65, 0x48]
        #expect(handle(failure, run) == ExitAction(.completeFWait))
        #expect(handle(failure, step) == ExitAction(.finishFWaitStep))
        env.code = [0xF3, 0x48, 0x0F, 0xB8, 0xC7]
    }

    @Test("the VM's end, resets, triple faults, entry failures, and exits that need nothing")
    func endsAndOthers() {
        #expect(handle(.systemEvent(type: UInt32(KVM_SYSTEM_EVENT_SHUTDOWN)), run) == ExitAction(.stop(.exit(status: 0))))
        guard case .stop(.crash(let reset)) = handle(.systemEvent(type: UInt32(KVM_SYSTEM_EVENT_RESET)), run).next,
              case .stop(.crash(let triple)) = handle(.shutdown, run).next,
              case .stop(.crash(let entry)) = handle(.failEntry(reason: 0x21), run).next,
              case .stop(.crash(let unknown)) = handle(.other(reason: 999), run).next else {
            Issue.record("expected crashes"); return
        }
        #expect(reset.kind == .reset && triple.kind == .tripleFault && entry.kind == .entryFailure && unknown.kind == .internalError)
        #expect(entry.detail.contains("0x21") && unknown.detail.contains("999"))
        #expect(handle(.other(reason: UInt32(KVM_EXIT_IRQ_WINDOW_OPEN)), run) == ExitAction(.reenter))
        #expect(handle(.other(reason: UInt32(KVM_EXIT_INTR)), run) == ExitAction(.reenter))
        #expect(handle(.interrupted, run) == ExitAction(.mailbox))
    }
}

@Suite("instruction names")
struct InstructionNameTests {
    @Test("the instructions KVM's emulator lacks are named, after their prefixes")
    func names() {
        #expect(InstructionName.name([0xF3, 0x48, 0x0F, 0xB8, 0xC7]) == "popcnt")
        #expect(InstructionName.name([0xF0, 0x48, 0x0F, 0xC7, 0x0E]) == "lock cmpxchg16b")
        #expect(InstructionName.name([0x48, 0x0F, 0xAE, 0x2F]) == "xrstor64")
        #expect(InstructionName.name([0x0F, 0xAE, 0x27]) == "xsave")
        #expect(InstructionName.name([0x9B]) == "fwait")
        #expect(InstructionName.name([0x0F, 0x01, 0xD0]) == "xgetbv")
        #expect(InstructionName.name([0x0F, 0x01, 0xCA]) == "clac")
        #expect(InstructionName.name([0x0F, 0xB8, 0xC7]) == nil, "0F B8 without F3 is not popcnt")
        #expect(InstructionName.name([0x0F, 0xAE, 0xF0]) == nil, "a register form of 0F AE is not xsave")
        #expect(InstructionName.name([0x66, 0x66]) == nil)
        #expect(InstructionName.name([]) == nil)
    }

    @Test("unknown instructions are shown by their bytes")
    func bytes() {
        #expect(InstructionName.describe([0x90, 0x01]) == "bytes 90 01")
        #expect(InstructionName.describe([0x9B, 0x65]) == "fwait (9b 65)")
        #expect(InstructionName.describe([]) == "its bytes cannot be read")
    }
}

import CKVM
import Foundation
@testable import KVMRunLoop

/// A vCPU whose KVM_RUN returns scripted exits, with KVM's rules for kicks: a run with
/// immediate_exit set returns `.interrupted` (and clears it) without running, and a run with no
/// exit left in the script "runs the guest" until it is kicked.
final class ScriptedVCPU: VCPUBackend, @unchecked Sendable {
    // SAFETY (Sendable): every field is guarded by `cond`.
    let index: Int
    private let cond = NSCondition()
    private var script: [VMExit]
    private var immediateExit = false
    private(set) var runs = 0
    private(set) var immediateExitRequests = 0
    private(set) var ioReads: [[UInt8]] = []
    private(set) var mmioReads: [UInt64] = []
    private(set) var guestDebug: [UInt32] = []
    var regs = kvm_regs()
    var sregs = kvm_sregs()
    var mpState = UInt32(KVM_MP_STATE_RUNNABLE)
    /// Called on the vCPU thread at the start of each run (to kick at a chosen moment).
    var beforeRun: ((Int) -> Void)?

    init(index: Int = 0, script: [VMExit]) {
        self.index = index
        self.script = script
        regs.rflags = 2
    }

    func run() throws(SystemError) -> VMExit {
        cond.lock()
        runs += 1
        let n = runs
        let hook = beforeRun
        cond.unlock()
        hook?(n)
        cond.lock()
        defer { cond.unlock() }
        if immediateExit { immediateExit = false; return .interrupted }
        if !script.isEmpty { return script.removeFirst() }
        while !immediateExit { cond.wait() }
        immediateExit = false
        return .interrupted
    }

    func requestImmediateExit() {
        cond.lock()
        immediateExit = true
        immediateExitRequests += 1
        cond.broadcast()
        cond.unlock()
    }

    func completeIORead(_ bytes: [UInt8]) { cond.lock(); ioReads.append(bytes); cond.unlock() }
    func completeMMIORead(_ value: UInt64) { cond.lock(); mmioReads.append(value); cond.unlock() }
    func getRegs() throws(SystemError) -> kvm_regs { cond.lock(); defer { cond.unlock() }; return regs }
    func setRegs(_ regs: kvm_regs) throws(SystemError) { cond.lock(); self.regs = regs; cond.unlock() }
    func getSregs() throws(SystemError) -> kvm_sregs { cond.lock(); defer { cond.unlock() }; return sregs }
    func getMPState() throws(SystemError) -> UInt32 { cond.lock(); defer { cond.unlock() }; return mpState }
    var fsw: UInt16 = 0
    func x87StatusWord() throws(SystemError) -> UInt16 { cond.lock(); defer { cond.unlock() }; return fsw }
    func getVCPUEvents() throws(SystemError) -> kvm_vcpu_events { kvm_vcpu_events() }
    func setVCPUEvents(_ events: kvm_vcpu_events) throws(SystemError) {}
    var pauseNotifications = 0
    func notifyGuestPaused() throws(SystemError) { cond.lock(); pauseNotifications += 1; cond.unlock() }
    func setGuestDebug(flags: UInt32, debugRegs: [UInt64]) throws(SystemError) {
        cond.lock(); guestDebug.append(flags); cond.unlock()
    }

    var snapshot: (runs: Int, kicks: Int, ioReads: [[UInt8]], mmioReads: [UInt64], guestDebug: [UInt32]) {
        cond.lock(); defer { cond.unlock() }
        return (runs, immediateExitRequests, ioReads, mmioReads, guestDebug)
    }
}

/// Devices, breakpoints and watches as a test sets them.
final class FakeEnvironment: ExitEnvironment, @unchecked Sendable {
    // SAFETY (Sendable): every field is guarded by `lock`.
    private let lock = NSLock()
    private var _writes: [(UInt16, [UInt8])] = []
    var exitOnPort: UInt16?
    var inputByte: UInt8 = 0x5A
    var mmioHit: (kind: WatchKind, address: UInt64)?
    var owner: BreakpointOwner = .none
    var watches = false
    var stepHit: VCPUStop?
    var onPortIO: (() -> Void)?
    var code: [UInt8] = [0xF3, 0x48, 0x0F, 0xB8, 0xC7]   // popcnt %rdi, %rax

    var writes: [(UInt16, [UInt8])] { lock.lock(); defer { lock.unlock() }; return _writes }

    func portIO(_ access: IOAccess) -> PortIOResult {
        lock.lock()
        let hook = onPortIO
        if access.isOut { _writes.append((access.port, access.data)) }
        let exits = access.port == exitOnPort
        let byte = inputByte
        lock.unlock()
        hook?()
        if exits { return PortIOResult(effect: .exit(status: 7)) }
        return PortIOResult(input: access.isOut ? [] : [UInt8](repeating: byte, count: access.size * max(access.count, 1)))
    }

    func mmio(_ access: MMIOAccess, paging: () -> PagingState?) -> MMIOResult {
        lock.lock(); defer { lock.unlock() }
        return MMIOResult(value: access.isWrite ? 0 : 0x1122, hit: mmioHit)
    }

    func breakpointOwner(atLinear address: UInt64, paging: PagingState) -> BreakpointOwner {
        lock.lock(); defer { lock.unlock() }
        return owner
    }

    func instructionBytes(atLinear address: UInt64, paging: PagingState) -> [UInt8] {
        lock.lock(); defer { lock.unlock() }
        return code
    }

    var hasWatches: Bool { lock.lock(); defer { lock.unlock() }; return watches }

    func watchStepSnapshot(regs: kvm_regs, sregs: kvm_sregs, allWatches: Bool) -> WatchStepSnapshot {
        WatchStepSnapshot(watched: [], reads: [], regsBefore: regs, sregsBefore: sregs)
    }

    func watchStepHit(_ snapshot: WatchStepSnapshot, regs: kvm_regs) -> VCPUStop? {
        lock.lock(); defer { lock.unlock() }
        return stepHit
    }
    /// What breakpoint agents decide at successive debug-register hits (true: run on); empty
    /// means stop, as with no agent.
    var agentVerdicts: [Bool] = []
    private(set) var agentCalls = 0
    func agentRunsOn(regs: kvm_regs, sregs: kvm_sregs) -> Bool {
        lock.lock(); defer { lock.unlock() }
        agentCalls += 1
        return agentVerdicts.isEmpty ? false : agentVerdicts.removeFirst()
    }
}

/// Stops a VCPUThread posts, for a test to wait on.
final class PostedStops: @unchecked Sendable {
    // SAFETY (Sendable): `stops` is guarded by `cond`.
    private let cond = NSCondition()
    private var stops: [VCPUStop] = []

    func post(_ stop: VCPUStop) { cond.lock(); stops.append(stop); cond.broadcast(); cond.unlock() }

    var all: [VCPUStop] { cond.lock(); defer { cond.unlock() }; return stops }
}

enum KickSignal {
    /// The vCPU kick signal's handler, as the Machine installs it (a kick to a thread without it
    /// would end the test process).
    static let installed: Bool = ckvm_install_kick_handler(ckvm_kick_signal()) == 0
}

import CKVM

/// What the vCPU run loop needs of a vCPU: the one KVM_RUN, completing exits, the registers a
/// debug exit is judged by, and guest debug. `VCPU` is the KVM implementation; tests script
/// exits through a fake, so the run loop, the exit handler and the kick/park/probe state machine
/// run without /dev/kvm.
public protocol VCPUBackend: AnyObject, Sendable {
    var index: Int { get }
    /// KVM_RUN once and decode the exit. EINTR (a kick) is `.interrupted`, and only then is
    /// `immediate_exit` cleared: a kick that lands while an exit is handled is kept.
    func run() throws(SystemError) -> VMExit
    /// Makes the next (or current) run return `.interrupted`; safe from any thread. Whoever
    /// kicks also signals the thread, so that a vCPU already inside KVM_RUN leaves it.
    func requestImmediateExit()
    /// The bytes an `in` returns (`size * count` of them), for the current `.io` exit.
    func completeIORead(_ bytes: [UInt8])
    /// The value an MMIO read returns, for the current `.mmio` exit.
    func completeMMIORead(_ value: UInt64)

    func getRegs() throws(SystemError) -> kvm_regs
    func setRegs(_ regs: kvm_regs) throws(SystemError)
    func getSregs() throws(SystemError) -> kvm_sregs
    func getMPState() throws(SystemError) -> UInt32
    func getVCPUEvents() throws(SystemError) -> kvm_vcpu_events
    func setVCPUEvents(_ events: kvm_vcpu_events) throws(SystemError)
    /// The x87 status word (FSW), for completing an FWAIT the emulator could not.
    func x87StatusWord() throws(SystemError) -> UInt16
    /// KVM_SET_GUEST_DEBUG (implementations skip it when nothing changed).
    func setGuestDebug(flags: UInt32, debugRegs: [UInt64]) throws(SystemError)
    /// KVM_KVMCLOCK_CTRL: tells a guest on kvmclock that it was paused, so its soft-lockup, RCU
    /// stall, hung-task and clocksource watchdogs forgive the time gdb held it (the flag reaches
    /// the guest at the next entry). Fails with EINVAL before the guest enabled kvmclock.
    func notifyGuestPaused() throws(SystemError)
}

extension VCPUBackend {
    /// The paging registers the page walker needs.
    public func pagingState() throws(SystemError) -> PagingState {
        let s = try getSregs()
        return PagingState(cr0: s.cr0, cr3: s.cr3, cr4: s.cr4, efer: s.efer)
    }

    /// Completes an FWAIT KVM's emulator could not run: with an unmasked x87 exception pending
    /// (FSW.ES) the CPU raises #MF before the instruction, which is injected; otherwise FWAIT
    /// does nothing and RIP moves past its one byte.
    public func completeFWait() throws(SystemError) {
        if try x87StatusWord() & 0x80 != 0 {
            try injectException(vector: 16)
            return
        }
        var regs = try getRegs()
        regs.rip &+= 1
        try setRegs(regs)
    }

    /// Delivers a breakpoint exception (#BP, a trap) to the guest for the int3 at RIP, injected
    /// on the next entry. After a #BP exit (VMX/SVM) KVM knows the int3's length and pushes the
    /// address after it itself; after an emulation failure it does not, so `advanceRIP` moves
    /// RIP past the one-byte int3 first. Either way the guest's handler sees what an int3 pushes.
    public func deliverGuestBreakpoint(advanceRIP: Bool) throws(SystemError) {
        if advanceRIP {
            var regs = try getRegs()
            regs.rip &+= 1
            try setRegs(regs)
        }
        try injectException(vector: 3)
    }

    /// An exception without an error code, delivered through the guest's IDT on the next entry.
    public func injectException(vector: UInt8) throws(SystemError) {
        var events = try getVCPUEvents()
        events.exception.injected = 1
        events.exception.nr = vector
        events.exception.has_error_code = 0
        events.exception.error_code = 0
        events.flags = 0
        try setVCPUEvents(events)
    }
}

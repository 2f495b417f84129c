import CKVM

extension kvm_segment {
    init(_ s: Segment) {
        self.init()
        base = s.base
        limit = s.limit
        selector = s.selector
        type = s.type
        present = s.present ? 1 : 0
        dpl = s.dpl
        db = s.db ? 1 : 0
        self.s = s.s ? 1 : 0
        l = s.l ? 1 : 0
        g = s.g ? 1 : 0
        unusable = 0
    }
}

extension VCPU {
    /// Puts the vCPU into a boot protocol's entry state, on top of KVM's reset state (which
    /// supplies TR, LDT, APIC base and the FPU defaults).
    public func apply(_ entry: EntryState, resetSregs: kvm_sregs) throws(SystemError) {
        var sregs = resetSregs
        sregs.cs = kvm_segment(entry.cs)
        sregs.ds = kvm_segment(entry.ds)
        sregs.es = kvm_segment(entry.es)
        sregs.fs = kvm_segment(entry.fs)
        sregs.gs = kvm_segment(entry.gs)
        sregs.ss = kvm_segment(entry.ss)
        sregs.gdt.base = entry.gdt.base
        sregs.gdt.limit = entry.gdt.limit
        sregs.idt.base = entry.idt.base
        sregs.idt.limit = entry.idt.limit
        sregs.cr0 = entry.cr0
        sregs.cr3 = entry.cr3
        sregs.cr4 = entry.cr4
        sregs.efer = entry.efer
        try setSregs(sregs)

        var regs = kvm_regs()
        regs.rip = entry.rip
        regs.rsp = entry.rsp
        regs.rflags = entry.rflags
        regs.rax = entry.rax
        regs.rbx = entry.rbx
        regs.rdi = entry.rdi
        regs.rsi = entry.rsi
        try setRegs(regs)
    }
}

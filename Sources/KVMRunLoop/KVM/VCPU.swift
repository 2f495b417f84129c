import CKVM
import Glibc

/// One KVM vCPU: its fd and mmapped kvm_run. Every ioctl on it is issued from the vCPU's own
/// thread (VCPUThread), which owns it; other threads only set `immediate_exit`.
public final class VCPU: VCPUBackend, @unchecked Sendable {
    // SAFETY (Sendable): once created, only the owning vCPU thread calls into it (until that
    // thread is joined and the VCPU released), except
    // `requestImmediateExit`, an atomic store into kvm_run.
    public let index: Int
    public let fd: Int32
    let shared: UnsafeMutablePointer<kvm_run>
    let runBase: UnsafeMutableRawPointer
    let runSize: Int
    unowned let vm: VirtualMachine
    /// kvm_run's sync area holds regs/sregs after the first exit (KVM_CAP_SYNC_REGS), which saves
    /// two ioctls per stop; before the first run it is empty and the ioctls are used instead.
    let useSyncRegs: Bool
    /// Bytes of the XSAVE image (KVM_CAP_XSAVE2 when the guest may use more than 4 KiB).
    private let xsaveSize: Int
    private var syncValid = false
    /// Copies read by ioctl before the first run (when the sync area is still empty), kept
    /// until the vCPU runs or is written: each ioctl costs tens of microseconds on nested hosts.
    private var cachedRegs: kvm_regs?
    private var cachedSregs: kvm_sregs?
    /// Where the current `.io` exit's data lies in the mapping, and how many bytes it holds.
    private var ioDataOffset = 0
    private var ioDataCount = 0
    private var guestDebugFlags: UInt32 = 0
    private var guestDebugRegs: [UInt64] = Array(repeating: 0, count: 8)
    public private(set) var exitCount: UInt64 = 0

    init(index: Int, fd: Int32, run: UnsafeMutableRawPointer, runSize: Int, vm: VirtualMachine) {
        self.index = index
        self.fd = fd
        self.runBase = run
        // SAFETY: the vCPU mapping starts with the kernel's kvm_run and lives until deinit.
        self.shared = run.assumingMemoryBound(to: kvm_run.self)
        self.runSize = runSize
        self.vm = vm
        xsaveSize = max(4096, Int(vm.kvm.capability(KVM_CAP_XSAVE2)))
        let sync = UInt(vm.kvm.capability(KVM_CAP_SYNC_REGS))
        let wanted = UInt(KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS)
        useSyncRegs = sync & wanted == wanted
        if useSyncRegs {
            self.shared.pointee.kvm_valid_regs = UInt64(KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS)
        }
    }

    deinit {
        munmap(runBase, runSize)
        close(fd)
    }

    // MARK: running

    /// The one KVM_RUN call site. EINTR (a kick) is `.interrupted`, not an error, and only
    /// then is `immediate_exit` cleared: a kick that landed while the last exit was handled
    /// makes this run return at once instead of being erased.
    public func run() throws(SystemError) -> VMExit {
        cachedRegs = nil
        cachedSregs = nil
        systemCallCount.add(1, ordering: .relaxed)
        let r = ckvm_ioctl_int(fd, CKVM_RUN, 0)
        let e = errno
        if useSyncRegs { syncValid = true; shared.pointee.kvm_dirty_regs = 0 }
        if r == -1 {
            if e == EINTR {
                ckvm_set_immediate_exit(shared, 0)
                return .interrupted
            }
            // EAGAIN: an AP still waiting for its SIPI is not runnable yet; ask again later.
            if e == EAGAIN { return .interrupted }
            throw SystemError("KVM_RUN on vCPU \(index)", errno: e)
        }
        exitCount &+= 1
        return decodeExit()
    }

    public func requestImmediateExit() {
        ckvm_set_immediate_exit(shared, 1)
    }

    private func decodeExit() -> VMExit {
        let r = shared.pointee
        switch Int32(r.exit_reason) {
        case KVM_EXIT_IO:
            let isOut = r.io.direction == UInt8(KVM_EXIT_IO_OUT)
            // Bounded by the mapping, whatever the kernel wrote.
            let offset = min(Int(r.io.data_offset), runSize)
            let count = min(Int(r.io.size) * Int(r.io.count), runSize - offset)
            ioDataOffset = offset
            ioDataCount = count
            // SAFETY: [offset, offset + count) lies inside the kvm_run mapping (clamped above).
            let data = isOut ? Array(UnsafeRawBufferPointer(start: runBase + offset, count: count)) : []
            return .io(IOAccess(isOut: isOut, port: r.io.port, size: Int(r.io.size), count: Int(r.io.count), data: data))
        case KVM_EXIT_MMIO:
            var data: UInt64 = 0
            // SAFETY: mmio.data is 8 bytes; the loop reads exactly those.
            withUnsafeBytes(of: r.mmio.data) { raw in
                for i in 0..<8 { data |= UInt64(raw[i]) << (8 * UInt64(i)) }
            }
            return .mmio(MMIOAccess(address: r.mmio.phys_addr, length: min(Int(r.mmio.len), 8),
                                    isWrite: r.mmio.is_write != 0, data: data))
        case KVM_EXIT_HLT:
            return .hlt
        case KVM_EXIT_DEBUG:
            return .debug(exception: r.debug.arch.exception, pc: r.debug.arch.pc,
                          dr6: r.debug.arch.dr6, dr7: r.debug.arch.dr7)
        case KVM_EXIT_SHUTDOWN:
            return .shutdown
        case KVM_EXIT_FAIL_ENTRY:
            return .failEntry(reason: r.fail_entry.hardware_entry_failure_reason)
        case KVM_EXIT_INTERNAL_ERROR:
            let n = min(Int(r.internal.ndata), 16)
            // SAFETY: internal.data holds 16 u64s and n <= 16.
            let data = withUnsafeBytes(of: r.internal.data) { raw in
                (0..<n).map { raw.load(fromByteOffset: $0 * 8, as: UInt64.self) }
            }
            return .internalError(suberror: r.internal.suberror, data: data)
        case KVM_EXIT_SYSTEM_EVENT:
            return .systemEvent(type: r.system_event.type)
        default:
            return .other(reason: r.exit_reason)
        }
    }

    public func completeIORead(_ bytes: [UInt8]) {
        let n = min(bytes.count, ioDataCount)
        guard n > 0 else { return }
        // SAFETY: the exit's data area [ioDataOffset, ioDataOffset + ioDataCount) lies inside the
        // mapping (clamped in decodeExit), and at most ioDataCount bytes are copied.
        bytes.withUnsafeBytes { (runBase + ioDataOffset).copyMemory(from: $0.baseAddress!, byteCount: n) }
    }

    public func completeMMIORead(_ value: UInt64) {
        // SAFETY: mmio.data is 8 bytes; the loop writes exactly those.
        withUnsafeMutableBytes(of: &shared.pointee.mmio.data) { raw in
            for i in 0..<8 { raw[i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
    }

    // MARK: registers

    public func getRegs() throws(SystemError) -> kvm_regs {
        if useSyncRegs && syncValid { return shared.pointee.s.regs.regs }
        if let cachedRegs { return cachedRegs }
        var regs = kvm_regs()
        try sys("KVM_GET_REGS") { ckvm_ioctl_ptr(fd, CKVM_GET_REGS, &regs) }
        cachedRegs = regs
        return regs
    }

    public func setRegs(_ regs: kvm_regs) throws(SystemError) {
        if useSyncRegs && syncValid {
            shared.pointee.s.regs.regs = regs
            shared.pointee.kvm_dirty_regs |= UInt64(KVM_SYNC_X86_REGS)
            return
        }
        var regs = regs
        cachedRegs = nil
        try sys("KVM_SET_REGS") { ckvm_ioctl_ptr(fd, CKVM_SET_REGS, &regs) }
    }

    public func getSregs() throws(SystemError) -> kvm_sregs {
        if useSyncRegs && syncValid { return shared.pointee.s.regs.sregs }
        if let cachedSregs { return cachedSregs }
        var sregs = kvm_sregs()
        try sys("KVM_GET_SREGS") { ckvm_ioctl_ptr(fd, CKVM_GET_SREGS, &sregs) }
        cachedSregs = sregs
        return sregs
    }

    public func setSregs(_ sregs: kvm_sregs) throws(SystemError) {
        var sregs = sregs
        cachedSregs = nil
        try sys("KVM_SET_SREGS") { ckvm_ioctl_ptr(fd, CKVM_SET_SREGS, &sregs) }
        // Keep the sync copy coherent so the next getSregs sees what we wrote.
        if useSyncRegs && syncValid { shared.pointee.s.regs.sregs = sregs }
    }

    public func getFPU() throws(SystemError) -> kvm_fpu {
        var fpu = kvm_fpu()
        try sys("KVM_GET_FPU") { ckvm_ioctl_ptr(fd, CKVM_GET_FPU, &fpu) }
        return fpu
    }

    public func x87StatusWord() throws(SystemError) -> UInt16 { try getFPU().fsw }

    public func setFPU(_ fpu: kvm_fpu) throws(SystemError) {
        var fpu = fpu
        try sys("KVM_SET_FPU") { ckvm_ioctl_ptr(fd, CKVM_SET_FPU, &fpu) }
    }

    /// The XSAVE image (the first 512 bytes are FXSAVE format). Preferred over KVM_GET_FPU,
    /// which on some hosts reports MXCSR as 0 whatever the guest's value.
    public func getXSave() throws(SystemError) -> [UInt8] {
        let size = xsaveSize
        var buffer = [UInt8](repeating: 0, count: size)
        let request = size > 4096 ? CKVM_GET_XSAVE2 : CKVM_GET_XSAVE
        let fd = self.fd
        // SAFETY: the buffer is the size KVM reports for the XSAVE image (at least 4 KiB).
        try sys("KVM_GET_XSAVE") { buffer.withUnsafeMutableBytes { ckvm_ioctl_ptr(fd, request, $0.baseAddress) } }
        return buffer
    }

    public func setXSave(_ image: [UInt8]) throws(SystemError) {
        var buffer = image
        let fd = self.fd
        // SAFETY: the buffer came from getXSave, so it has the size KVM expects.
        try sys("KVM_SET_XSAVE") { buffer.withUnsafeMutableBytes { ckvm_ioctl_ptr(fd, CKVM_SET_XSAVE, $0.baseAddress) } }
    }

    public func getMSRs(_ indices: [UInt32]) throws(SystemError) -> [UInt32: UInt64] {
        guard let buffer = ckvm_msrs_alloc(UInt32(indices.count)) else {
            throw SystemError("allocating an MSR buffer", errno: ENOMEM)
        }
        defer { free(buffer) }
        // SAFETY: ckvm_msrs_alloc sized the flexible array for indices.count entries.
        let entries = UnsafeMutableRawPointer(buffer).advanced(by: MemoryLayout<kvm_msrs>.size)
            .assumingMemoryBound(to: kvm_msr_entry.self)
        for (i, index) in indices.enumerated() { entries[i] = kvm_msr_entry(index: index, reserved: 0, data: 0) }
        let n = try sys("KVM_GET_MSRS") { ckvm_ioctl_ptr(fd, CKVM_GET_MSRS, buffer) }
        var result: [UInt32: UInt64] = [:]
        for i in 0..<Int(n) { result[entries[i].index] = entries[i].data }
        return result
    }

    public func setMSRs(_ values: [(UInt32, UInt64)]) throws(SystemError) {
        guard let buffer = ckvm_msrs_alloc(UInt32(values.count)) else {
            throw SystemError("allocating an MSR buffer", errno: ENOMEM)
        }
        defer { free(buffer) }
        // SAFETY: ckvm_msrs_alloc sized the flexible array for values.count entries.
        let entries = UnsafeMutableRawPointer(buffer).advanced(by: MemoryLayout<kvm_msrs>.size)
            .assumingMemoryBound(to: kvm_msr_entry.self)
        for (i, (index, data)) in values.enumerated() { entries[i] = kvm_msr_entry(index: index, reserved: 0, data: data) }
        let n = try sys("KVM_SET_MSRS") { ckvm_ioctl_ptr(fd, CKVM_SET_MSRS, buffer) }
        if Int(n) != values.count {
            throw SystemError("KVM_SET_MSRS (MSR 0x\(String(values[Int(n)].0, radix: 16)) refused)", errno: EINVAL)
        }
    }

    public func getDebugRegs() throws(SystemError) -> kvm_debugregs {
        var d = kvm_debugregs()
        try sys("KVM_GET_DEBUGREGS") { ckvm_ioctl_ptr(fd, CKVM_GET_DEBUGREGS, &d) }
        return d
    }

    /// dr0-3, dr6, dr7 as the guest sees them (gdbvmm's own hardware breakpoints live in the
    /// guest-debug registers, not here). KVM refuses bits above 31 in dr6 and dr7.
    public func setDebugRegs(_ regs: kvm_debugregs) throws(SystemError) {
        var d = regs
        d.flags = 0
        try sys("KVM_SET_DEBUGREGS") { ckvm_ioctl_ptr(fd, CKVM_SET_DEBUGREGS, &d) }
    }

    /// The CPUID this vCPU was given (KVM_GET_CPUID2).
    public func getCPUID() throws(SystemError) -> [kvm_cpuid_entry2] {
        let capacity: UInt32 = 256
        guard let buffer = ckvm_cpuid2_alloc(capacity) else {
            throw SystemError("allocating a CPUID buffer", errno: ENOMEM)
        }
        defer { free(buffer) }
        buffer.pointee.nent = capacity
        try sys("KVM_GET_CPUID2") { ckvm_ioctl_ptr(fd, CKVM_GET_CPUID2, buffer) }
        // SAFETY: ckvm_cpuid2_alloc sized the flexible array for `capacity` entries, and KVM
        // wrote nent <= capacity of them.
        let p = UnsafeMutableRawPointer(buffer).advanced(by: MemoryLayout<kvm_cpuid2>.size)
            .assumingMemoryBound(to: kvm_cpuid_entry2.self)
        return (0..<Int(min(buffer.pointee.nent, capacity))).map { p[$0] }
    }

    /// Bytes of the XSAVE image getXSave returns.
    public var xsaveImageSize: Int { xsaveSize }

    public func getMPState() throws(SystemError) -> UInt32 {
        var s = kvm_mp_state()
        try sys("KVM_GET_MP_STATE") { ckvm_ioctl_ptr(fd, CKVM_GET_MP_STATE, &s) }
        return s.mp_state
    }

    public func setMPState(_ state: UInt32) throws(SystemError) {
        var s = kvm_mp_state(mp_state: state)
        try sys("KVM_SET_MP_STATE") { ckvm_ioctl_ptr(fd, CKVM_SET_MP_STATE, &s) }
    }

    public func getVCPUEvents() throws(SystemError) -> kvm_vcpu_events {
        var e = kvm_vcpu_events()
        try sys("KVM_GET_VCPU_EVENTS") { ckvm_ioctl_ptr(fd, CKVM_GET_VCPU_EVENTS, &e) }
        return e
    }

    public func setVCPUEvents(_ events: kvm_vcpu_events) throws(SystemError) {
        var e = events
        try sys("KVM_SET_VCPU_EVENTS") { ckvm_ioctl_ptr(fd, CKVM_SET_VCPU_EVENTS, &e) }
    }

    public func setCPUID(_ entries: [kvm_cpuid_entry2]) throws(SystemError) {
        guard let buffer = ckvm_cpuid2_alloc(UInt32(entries.count)) else {
            throw SystemError("allocating a CPUID buffer", errno: ENOMEM)
        }
        defer { free(buffer) }
        // SAFETY: ckvm_cpuid2_alloc sized the flexible array for entries.count entries.
        let p = UnsafeMutableRawPointer(buffer).advanced(by: MemoryLayout<kvm_cpuid2>.size)
            .assumingMemoryBound(to: kvm_cpuid_entry2.self)
        for (i, entry) in entries.enumerated() { p[i] = entry }
        try sys("KVM_SET_CPUID2") { ckvm_ioctl_ptr(fd, CKVM_SET_CPUID2, buffer) }
    }

    public func notifyGuestPaused() throws(SystemError) {
        try sys("KVM_KVMCLOCK_CTRL") { ckvm_ioctl_int(fd, CKVM_KVMCLOCK_CTRL, 0) }
    }

    /// KVM_SET_GUEST_DEBUG, skipped when nothing changed: each ioctl costs microseconds here.
    public func setGuestDebug(flags: UInt32, debugRegs: [UInt64]) throws(SystemError) {
        if flags == guestDebugFlags && debugRegs == guestDebugRegs { return }
        var dbg = kvm_guest_debug()
        dbg.control = flags
        // SAFETY: arch.debugreg is eight u64s; the loop stores exactly those.
        withUnsafeMutableBytes(of: &dbg.arch.debugreg) { raw in
            for i in 0..<8 { raw.storeBytes(of: i < debugRegs.count ? debugRegs[i] : 0, toByteOffset: i * 8, as: UInt64.self) }
        }
        try sys("KVM_SET_GUEST_DEBUG") { ckvm_ioctl_ptr(fd, CKVM_SET_GUEST_DEBUG, &dbg) }
        guestDebugFlags = flags
        guestDebugRegs = debugRegs
    }
}

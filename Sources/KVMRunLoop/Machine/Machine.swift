import CKVM
import Foundation
import Glibc

public struct MachineConfiguration: Sendable {
    public var image: [UInt8]
    public var memorySize: UInt64
    public var cpuCount: Int
    public var commandLine: String
    /// An initial ramdisk for Linux bzImage and PVH guests (`--initrd`).
    public var initrd: [UInt8]?
    /// Where the UART's transmitter and the 0xE9 console write.
    public var serial: any ByteSink
    public var kvmPath: String

    public init(image: [UInt8], memorySize: UInt64, cpuCount: Int = 1, commandLine: String = "",
                initrd: [UInt8]? = nil, serial: any ByteSink, kvmPath: String = "/dev/kvm") {
        self.image = image
        self.memorySize = memorySize
        self.cpuCount = cpuCount
        self.commandLine = commandLine
        self.initrd = initrd
        self.serial = serial
        self.kvmPath = kvmPath
    }

    /// Guest RAM stays below the 32-bit PCI hole and the TSS pages KVM needs at 0xFFFBC000.
    public static let maximumMemory: UInt64 = 3 << 30
    public static let maximumCPUs = 64
}

/// What the controller knows about each vCPU between runs.
public enum VCPUStatus: Sendable, Equatable {
    case runnable
    case halted
    /// Multiboot/PVH application processors before their INIT-SIPI-SIPI.
    case waitingForSIPI
    case crashed(Crash)
}

/// A booted guest: RAM, devices, vCPUs and their threads, and the debugger's breakpoints.
/// Everything public here is called from one controller thread. The controller never touches a
/// vCPU itself: each vCPU thread owns its VCPU, and the controller posts it orders (run, pause,
/// probe, a job on its state) through `VCPUThread`.
public final class Machine: @unchecked Sendable {
    // SAFETY (Sendable): controller-only state is touched from the controller thread alone;
    // state the vCPU threads read (breakpoints, watch traps, the bus) carries its own lock.
    public let configuration: MachineConfiguration
    public let ram: GuestRAM
    public let stops: StopQueue
    public let statistics: ExitStatistics
    public internal(set) var guest: LoadedGuest
    /// The command line the guest boots with: the user's, plus what Linux needs on this host.
    public let bootCommandLine: String
    public private(set) var status: [VCPUStatus]
    public let hasIRQChip: Bool
    /// A Linux kernel (bzImage, or a vmlinux whose Xen note says so).
    public let isLinux: Bool
    /// gdb's memory packets take physical addresses (`monitor phys on`).
    public var physicalAddressing = false
    /// Single steps run with interrupts held off (KVM_GUESTDBG_BLOCKIRQ, where KVM has it);
    /// gdb can turn that off with QEMU's `Qqemu.sstep`.
    public var stepsBlockInterrupts = true
    /// KVM can hold interrupts off during a single step.
    public var canBlockInterruptsWhileStepping: Bool { supportsBlockIRQ }
    /// The port I/O devices and the ports each claims.
    public var portClaims: [(ports: ClosedRange<UInt16>, device: String)] { bus.claims }

    let kvm: Kvm
    let vm: VirtualMachine
    let bus: PortBus
    let serial: Serial16550
    var threads: [VCPUThread<VCPU>] = []
    let breakpoints = BreakpointTable()
    let watches: WatchTraps
    var hardwareBreakpoints: [UInt64?] = [nil, nil, nil, nil]
    /// Debug-register slots that carry a software breakpoint at an unmapped address.
    var softwareBreakpointSlots: [Int: UInt64] = [:]
    /// Software breakpoints planted where the image says their code lies, before the guest's
    /// page tables mapped it (virtual -> physical): their pages are guarded (WatchTraps).
    var guardedBreakpoints: [UInt64: UInt64] = [:]
    /// Addresses gdb first set a software breakpoint on before they were mapped: gdb removes
    /// and re-inserts its breakpoints at every stop, and they stay guarded when it does.
    var breakpointsSetBeforeMapping: Set<UInt64> = []
    /// Software breakpoints on a bzImage's kernel set before its decompressor wrote it out, in
    /// the order gdb set them: planted at the decompressor's jump to it, which the debug register
    /// `kernelEntrySlot` watches for.
    var awaitingKernel: [UInt64] = []
    var kernelEntrySlot: Int?
    /// Breakpoints set before mapping whose code the guest's tables have mapped since.
    var seenMapped: Set<UInt64> = []
    /// gdb's breakpoints on code the guest has unmapped since (`imageCodeIsGone`): kept, unplanted.
    var dormantBreakpoints: Set<UInt64> = []
    private var resetSregs: [kvm_sregs] = []
    private var resetFPU: [kvm_fpu] = []
    private let supportsBlockIRQ: Bool
    private var isShutDown = false

    public var vcpuCount: Int { configuration.cpuCount }

    public init(_ configuration: MachineConfiguration) throws(MachineError) {
        self.configuration = configuration
        guard configuration.memorySize >= 2 << 20 else {
            throw .configuration("guest memory must be at least 2M")
        }
        guard configuration.memorySize <= MachineConfiguration.maximumMemory else {
            throw .configuration("guest memory is limited to 3G (RAM above the 32-bit hole is not supported yet)")
        }
        guard (1...MachineConfiguration.maximumCPUs).contains(configuration.cpuCount) else {
            throw .configuration("--cpus must be between 1 and \(MachineConfiguration.maximumCPUs)")
        }
        do {
            kvm = try Kvm(path: configuration.kvmPath)
        } catch {
            throw .kvmUnavailable(path: configuration.kvmPath, error)
        }
        do {
            // vCPU threads are kicked out of KVM_RUN with this signal; its handler does nothing.
            let signo = ckvm_kick_signal()
            try sys("installing the vCPU kick signal handler") { ckvm_install_kick_handler(signo) }
            ram = try GuestRAM(size: configuration.memorySize)
            stops = try StopQueue()
        } catch {
            throw .system(error)
        }
        // Linux needs a parameter or two from us, and a few more on a host that emulates guest
        // kernel code (see LinuxCommandLine); they are part of the command line it is booted with.
        bootCommandLine = LinuxCommandLine.commandLine(configuration.commandLine, image: configuration.image,
                                                       emulatingHost: Kvm.emulatesGuestKernelCode)
        // Load (and thereby validate) the image before anything of the VM exists.
        do {
            guest = try loadGuest(image: configuration.image, into: ram, commandLine: bootCommandLine,
                                  cpuCount: configuration.cpuCount, initrd: configuration.initrd)
        } catch {
            throw .image(error)
        }
        statistics = ExitStatistics(vcpuCount: configuration.cpuCount)
        serial = Serial16550(sink: configuration.serial)
        bus = PortBus(devices: [
            (0x3F8...0x3FF, serial),
            (0xF4...0xF4, ISADebugExit()),
            (0xE9...0xE9, DebugConsole(sink: configuration.serial)),
            (0x604...0x605, PowerOff()),
            (ACPISleepControl.port...ACPISleepControl.statusPort, ACPISleepControl()),
            (ResetControl.keyboardControllerPort...ResetControl.keyboardControllerPort, ResetControl()),
            (ResetControl.port...ResetControl.port, ResetControl()),
        ])
        watches = WatchTraps(ram: ram)
        // APs of multiboot/PVH guests start the way real ones do: INIT-SIPI-SIPI through the
        // local APIC, which KVM's in-kernel irqchip provides.
        // Linux needs interrupts (a timer) on any number of vCPUs: the PIC, IOAPIC and PIT too,
        // and ACPI tables that tell it about them and about every vCPU.
        isLinux = LinuxCommandLine.isLinux(configuration.image)
        if isLinux { try? ram.write(ACPITables.build(cpuCount: configuration.cpuCount), at: ACPITables.address) }
        hasIRQChip = (configuration.cpuCount > 1 && guest.bootProtocol != .elf64Direct) || isLinux
        let debugCaps = UInt32(bitPattern: kvm.capability(KVM_CAP_SET_GUEST_DEBUG2))
        supportsBlockIRQ = debugCaps & UInt32(KVM_GUESTDBG_BLOCKIRQ) != 0
        status = Array(repeating: .runnable, count: configuration.cpuCount)
        let environment = GuestEnvironment(bus: bus, ram: ram, breakpoints: breakpoints, watches: watches)
        do {
            vm = try kvm.createVM()
            // VMX needs these for real mode; other hosts (and this paravirtual one) may refuse
            // them, which is harmless because we never enter real mode at boot.
            try? vm.setUpArchitecturalPages()
            if hasIRQChip { try vm.createIRQChip() }
            if isLinux { try vm.createPIT() }
            if hasIRQChip {
                // A failed KVM_IRQ_LINE cannot be reported from inside a port access; it only
                // happens when the irqchip is gone, at teardown.
                let vm = vm
                serial.connect { high in try? vm.setIRQLine(Serial16550.irq, high: high) }
            }
            try vm.setMemoryRegion(slot: 0, guestPhysical: 0, size: ram.size, host: ram.base)
            let cpuid = try kvm.supportedCPUID()
            let emulated = Kvm.emulatesGuestKernelCode
            let stops = self.stops
            for index in 0..<configuration.cpuCount {
                let thread = VCPUThread(backend: try vm.createVCPU(index: index), environment: environment,
                                        statistics: statistics, post: { stops.enqueue(vcpu: $0, stop: $1) },
                                        wake: { stops.wake() })
                thread.start()
                threads.append(thread)
                // From here on only the vCPU's own thread issues its ioctls.
                let (sregs, fpu) = try thread.perform { (vcpu) throws(SystemError) in
                    try vcpu.setCPUID(Machine.cpuid(cpuid, apicID: UInt32(index), emulated: emulated))
                    return (try vcpu.getSregs(), try vcpu.getFPU())
                }
                resetSregs.append(sregs)
                resetFPU.append(fpu)
            }
            try applyEntryStates()
        } catch {
            for thread in threads { thread.finish() }
            throw .system(error)
        }
        watches.attach(vm: vm)
    }

    deinit { shutdown() }

    /// Parks every vCPU and joins its thread; the VM's fds close when the Machine goes.
    public func shutdown() {
        guard !isShutDown else { return }
        isShutDown = true
        for thread in threads { thread.requestPause() }
        for thread in threads { thread.finish() }
    }

    /// Leaf 1 ECX features KVM's instruction emulator cannot execute, found booting the Debian
    /// cloud kernel where guest kernel code is emulated: CMPXCHG16B (bit 13, SLUB's first
    /// use), POPCNT (bit 23, `__bitmap_weight`), XSAVE and OSXSAVE (bits 26-27; the FPU setup's
    /// `xrstor64`) with AVX (bit 28), which needs XSAVE; and the SIMD extensions past SSE2
    /// whose in-kernel users (blake2s for random.c, crypto) the emulator cannot run: PCLMULQDQ
    /// (bit 1), SSSE3 (9), SSE4.1 (19), SSE4.2 (20), AES-NI (25).
    static let featuresTheEmulatorLacks: UInt32 = (1 << 1) | (1 << 9) | (1 << 13) | (1 << 19) | (1 << 20) | (1 << 23)
        | (1 << 25) | (1 << 26) | (1 << 27) | (1 << 28)

    /// KVM's supported CPUID with this vCPU's APIC ID filled in and the hypervisor bit set;
    /// with `emulated` (guest kernel code runs under KVM's emulator), without the features
    /// that emulator cannot execute. On VMX/SVM hosts the guest keeps the host's features.
    static func cpuid(_ supported: [kvm_cpuid_entry2], apicID: UInt32, emulated: Bool = false) -> [kvm_cpuid_entry2] {
        supported.map { entry in
            var e = entry
            switch e.function {
            case 1:
                e.ebx = (e.ebx & 0x00FF_FFFF) | (apicID << 24)
                e.ecx |= 1 << 31
                if emulated { e.ecx &= ~featuresTheEmulatorLacks }
            case 7 where emulated && e.index == 0:
                // AVX2 and AVX-512 need the XSAVE state that is hidden above; SMAP's CLAC/STAC
                // are beyond the emulator too.
                e.ebx &= ~((1 << 5) | (1 << 20) | 0xDC23_0000)
            case 0xB, 0x1F:
                e.edx = apicID
            default:
                break
            }
            return e
        }
    }

    private func applyEntryStates() throws(SystemError) {
        for (index, thread) in threads.enumerated() {
            // Power-on values (KVM's reset image may leave them zero): x87 control word 0x37F,
            // MXCSR 0x1F80 with every SSE exception masked.
            var fpu = resetFPU[index]
            fpu.fcw = 0x37F
            fpu.mxcsr = 0x1F80
            let entry = index < guest.entry.count ? guest.entry[index] : nil
            let reset = resetSregs[index]
            let waitsForSIPI = hasIRQChip
            try thread.perform { (vcpu) throws(SystemError) in
                try vcpu.setFPU(fpu)
                if let entry {
                    try vcpu.apply(entry, resetSregs: reset)
                } else {
                    try vcpu.setSregs(reset)
                    if waitsForSIPI { try vcpu.setMPState(UInt32(KVM_MP_STATE_UNINITIALIZED)) }
                }
            }
            status[index] = entry != nil ? .runnable : .waitingForSIPI
        }
    }

    /// Runs `body` on vCPU `index`'s own thread, which must be parked, and returns its result:
    /// the way the controller reads or changes a vCPU's state.
    public func withVCPU<T, E: Error>(_ index: Int, _ body: (VCPU) throws(E) -> T) throws(E) -> T {
        try threads[index].perform(body)
    }

    /// The registers vCPU `index` parked with (nil while it runs): enough for stop replies,
    /// breakpoint translation and memory packets, at no cost.
    public func parkedRegisters(_ index: Int) -> ExitRegisters? { threads[index].registers }

    /// Console input for the guest: queued in the UART's receiver for the guest to read.
    public func serialInput(_ bytes: [UInt8]) {
        serial.receive(bytes)
    }

    // MARK: running and stopping

    /// Resumes the named vCPUs, in the order given (the first gets the host's CPU first); the
    /// others stay parked. Each stop arrives through `stops`.
    public func resume(_ plan: [Int: RunMode], order: [Int]? = nil) throws(SystemError) {
        if watches.isEmpty {
            try watches.apply()
        } else {
            // The guests' page-table pages cannot be trapped (see WatchTraps): find them.
            var tables: Set<UInt64> = []
            for thread in threads {
                guard let paging = thread.registers?.paging else { continue }
                tables.formUnion(PageWalker.tablePages(paging: paging, memory: ram))
            }
            try watches.apply(tablePages: tables)
        }
        var base = debugSetup()
        base.watchByStepping = watches.needsStepping
        let sequence = order ?? plan.keys.sorted()
        for index in sequence {
            guard let mode = plan[index] else { continue }
            var p = base
            p.mode = mode
            threads[index].resume(p)
        }
    }

    /// Kicks every running vCPU and waits until all are parked. Their stops (mostly
    /// `.interrupted`) are left in `stops` for the controller to drain. With `fairly`, a vCPU
    /// that has not run since its resume first runs for `fairnessQuantum` (see
    /// `VCPUThread.requestPause`).
    public func pauseAll(fairly: Bool = false) {
        for thread in threads { thread.requestPause(immediately: !fairly) }
        if fairly {
            for thread in threads { thread.completePause(quantum: Machine.fairnessQuantum) }
        }
        for thread in threads { thread.waitUntilParked() }
    }

    /// Guest time a resumed vCPU gets before a pause for another vCPU's stop parks it: enough
    /// for a few hundred emulated instructions on a nested host.
    public static let fairnessQuantum: UInt64 = 200_000

    /// The watchpoint fallback for a vCPU that stopped with `.untrappedStepNeeded`: with every
    /// vCPU parked, lift the traps, step that one instruction (checking it against the watches),
    /// and put the traps back. Returns how the step ended (`.stepped` when no watch was hit).
    public func stepUntrapped(_ index: Int) throws(SystemError) -> VCPUStop {
        precondition(allParked, "the watch traps change only while every vCPU is parked")
        try watches.setLifted(true)
        var plan = debugSetup()
        plan.mode = .untrappedStep
        threads[index].resume(plan)
        threads[index].waitUntilParked()
        let stop = stops.take(vcpu: index) ?? .stepped
        try watches.setLifted(false)
        return stop
    }

    /// True when every vCPU that is running sits in HLT with interrupts off (or waits for a
    /// SIPI), and the parked ones are halted too: nothing can ever wake the guest. Only needed
    /// with the in-kernel irqchip, which keeps HLT from reaching us.
    public func probeAllHalted() -> Bool {
        var anyHalted = false
        for (index, thread) in threads.enumerated() {
            if thread.isParked {
                switch status[index] {
                case .halted: anyHalted = true
                case .waitingForSIPI: break
                case .runnable, .crashed: return false
                }
                continue
            }
            guard let halted = thread.probeHalted(), halted else { return false }
            if index == 0 || status[index] != .waitingForSIPI { anyHalted = true }
        }
        return anyHalted
    }

    public var allParked: Bool { threads.allSatisfy(\.isParked) }

    public func isParked(_ index: Int) -> Bool { threads[index].isParked }

    /// Records what the controller learned from a stop, for later resumes and thread info.
    public func note(_ stop: VCPUStop, vcpu index: Int) {
        switch stop {
        case .halted: status[index] = .halted
        case .crash(let crash): status[index] = .crashed(crash)
        case .interrupted where status[index] == .waitingForSIPI:
            // Ask KVM: the AP may have received its SIPI meanwhile.
            let state = try? withVCPU(index) { (vcpu) throws(SystemError) in try vcpu.getMPState() }
            if let state, state != UInt32(KVM_MP_STATE_UNINITIALIZED), state != UInt32(KVM_MP_STATE_INIT_RECEIVED) {
                status[index] = .runnable
            }
        case .interrupted, .untrappedStepNeeded:
            break
        default:
            if status[index] == .waitingForSIPI { status[index] = .runnable }
        }
    }

    /// gdb's view of whether vCPU `index` sits on an armed hardware breakpoint or a planted
    /// software one (a pending breakpoint stop is dropped when that is no longer so).
    public func breakpointStillThere(_ stop: VCPUStop, vcpu index: Int) -> Bool {
        guard let r = parkedRegisters(index) else { return false }
        switch stop {
        case .softwareBreakpoint:
            guard let t = PageWalker.translate(r.linearPC, paging: r.paging, memory: ram) else { return false }
            return breakpoints.contains(physical: t.physical)
        case .hardwareBreakpoint(let slot):
            return slot < hardwareBreakpoints.count && hardwareBreakpoints[slot] == r.linearPC
        default:
            return true
        }
    }

    func debugSetup() -> RunPlan {
        var flags: UInt32 = 0
        if !breakpoints.plantedPhysical.isEmpty { flags |= UInt32(KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP) }
        var regs = [UInt64](repeating: 0, count: 8)
        var armed: [UInt64] = []
        for (slot, address) in hardwareBreakpoints.enumerated() {
            guard let address else { continue }
            regs[slot] = address
            // Global enable, execute, length 1 (RW and LEN bits zero).
            regs[7] |= 2 << (UInt64(slot) * 2)
            armed.append(address)
        }
        if !armed.isEmpty {
            regs[7] |= 1 << 10
            flags |= UInt32(KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP)
        }
        return RunPlan(mode: .run, debugFlags: flags, debugRegs: regs, hardwareBreakpoints: armed,
                       blockIRQ: supportsBlockIRQ && stepsBlockInterrupts, watchByStepping: false)
    }

    // MARK: reset

    /// Back to the image's entry state: RAM cleared and reloaded, vCPUs reset, breakpoints kept
    /// (re-planted over the fresh image). Every vCPU must be parked.
    public func reset() throws(MachineError) {
        let planted = breakpoints.all + dormantBreakpoints.map { (virtual: $0, physical: UInt64.max) }
        for (virtual, _) in planted { removeSoftwareBreakpoint(at: virtual) }
        // A fresh boot: no code has been mapped or unmapped yet.
        seenMapped.removeAll()
        breakpoints.clearRetired()
        // A private anonymous mapping reads back as zeroes after MADV_DONTNEED.
        madvise(ram.base, Int(ram.size), MADV_DONTNEED)
        do {
            guest = try loadGuest(image: configuration.image, into: ram, commandLine: bootCommandLine,
                                  cpuCount: configuration.cpuCount, initrd: configuration.initrd)
        } catch {
            throw .image(error)
        }
        if isLinux { try? ram.write(ACPITables.build(cpuCount: configuration.cpuCount), at: ACPITables.address) }
        do {
            try watches.reset()
            try applyEntryStates()
        } catch {
            throw .system(error)
        }
        for (virtual, physical) in planted {
            // Planted where the image said its code would be: placed again as it was first
            // (a bzImage's kernel waits for its decompressor again).
            if breakpointsSetBeforeMapping.contains(virtual) {
                try? insertSoftwareBreakpoint(at: virtual, vcpu: 0)
            } else if let original = try? ram.read(at: physical, count: 1).first,
               breakpoints.insert(virtual: virtual, physical: physical, original: original) {
                try? ram.write([0xCC], at: physical)
            }
        }
    }
}

import CKVM
import Foundation
import Glibc

public struct MachineConfiguration: Sendable {
    public var image: [UInt8]
    public var memorySize: UInt64
    public var cpuCount: Int
    public var commandLine: String
    /// Where the UART's transmitter and the 0xE9 console write.
    public var serial: any ByteSink
    public var kvmPath: String

    public init(image: [UInt8], memorySize: UInt64, cpuCount: Int = 1, commandLine: String = "",
                serial: any ByteSink, kvmPath: String = "/dev/kvm") {
        self.image = image
        self.memorySize = memorySize
        self.cpuCount = cpuCount
        self.commandLine = commandLine
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
/// Controller-side methods (everything public here) are called from one controller thread
/// while the vCPUs they touch are parked; the vCPU threads call the `handle...` methods.
public final class Machine: @unchecked Sendable {
    // SAFETY (Sendable): controller-only state is touched from the controller thread alone;
    // state the vCPU threads read (breakpoints, watch traps, the bus) carries its own lock.
    public let configuration: MachineConfiguration
    public let ram: GuestRAM
    public let stops: StopQueue
    public let statistics: ExitStatistics
    public private(set) var guest: LoadedGuest
    public private(set) var status: [VCPUStatus]
    public let hasIRQChip: Bool
    /// gdb's memory packets take physical addresses (`monitor phys on`).
    public var physicalAddressing = false

    let kvm: Kvm
    let vm: VirtualMachine
    let bus: PortBus
    let serial: Serial16550
    var threads: [VCPUThread] = []
    let breakpoints = BreakpointTable()
    let watches: WatchTraps
    var hardwareBreakpoints: [UInt64?] = [nil, nil, nil, nil]
    private var resetSregs: [kvm_sregs] = []
    private var resetFPU: [kvm_fpu] = []
    private let supportsBlockIRQ: Bool

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
        // Load (and thereby validate) the image before anything of the VM exists.
        do {
            guest = try loadGuest(image: configuration.image, into: ram,
                                  commandLine: configuration.commandLine, cpuCount: configuration.cpuCount)
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
        ])
        watches = WatchTraps(ram: ram)
        // APs of multiboot/PVH guests start the way real ones do: INIT-SIPI-SIPI through the
        // local APIC, which KVM's in-kernel irqchip provides.
        hasIRQChip = configuration.cpuCount > 1 && guest.bootProtocol != .elf64Direct
        let debugCaps = UInt32(bitPattern: kvm.capability(KVM_CAP_SET_GUEST_DEBUG2))
        supportsBlockIRQ = debugCaps & UInt32(KVM_GUESTDBG_BLOCKIRQ) != 0
        status = Array(repeating: .runnable, count: configuration.cpuCount)
        do {
            vm = try kvm.createVM()
            // VMX needs these for real mode; other hosts (and this paravirtual one) may refuse
            // them, which is harmless because we never enter real mode at boot.
            try? vm.setUpArchitecturalPages()
            if hasIRQChip { try vm.createIRQChip() }
            try vm.setMemoryRegion(slot: 0, guestPhysical: 0, size: ram.size, host: ram.base)
            let cpuid = try kvm.supportedCPUID()
            for index in 0..<configuration.cpuCount {
                let vcpu = try vm.createVCPU(index: index)
                try vcpu.setCPUID(Machine.cpuid(cpuid, apicID: UInt32(index)))
                resetSregs.append(try vcpu.getSregs())
                resetFPU.append(try vcpu.getFPU())
                threads.append(VCPUThread(vcpu: vcpu, machine: self))
            }
            try applyEntryStates()
        } catch {
            throw .system(error)
        }
        watches.attach(vm: vm)
        for thread in threads { thread.start() }
    }

    /// KVM's supported CPUID with this vCPU's APIC ID filled in, and the hypervisor bit set.
    static func cpuid(_ supported: [kvm_cpuid_entry2], apicID: UInt32) -> [kvm_cpuid_entry2] {
        supported.map { entry in
            var e = entry
            switch e.function {
            case 1:
                e.ebx = (e.ebx & 0x00FF_FFFF) | (apicID << 24)
                e.ecx |= 1 << 31
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
            try thread.vcpu.setFPU(fpu)
            if index < guest.entry.count {
                try thread.vcpu.apply(guest.entry[index], resetSregs: resetSregs[index])
                status[index] = .runnable
            } else {
                try thread.vcpu.setSregs(resetSregs[index])
                if hasIRQChip { try thread.vcpu.setMPState(UInt32(KVM_MP_STATE_UNINITIALIZED)) }
                status[index] = .waitingForSIPI
            }
        }
    }

    public func vcpu(_ index: Int) -> VCPU { threads[index].vcpu }

    /// Console input for the guest: queued in the UART's receiver for the guest to read.
    public func serialInput(_ bytes: [UInt8]) {
        serial.receive(bytes)
    }

    // MARK: running and stopping

    /// Resumes the named vCPUs; the others stay parked. A stop arrives through `stops`.
    public func resume(_ plan: [Int: RunMode]) throws(SystemError) {
        if watches.isEmpty {
            try watches.apply()
        } else {
            // The guests' page-table pages cannot be trapped (see WatchTraps): find them.
            var tables: Set<UInt64> = []
            for thread in threads {
                guard let paging = try? thread.vcpu.pagingState() else { continue }
                tables.formUnion(PageWalker.tablePages(paging: paging, memory: ram))
            }
            try watches.apply(tablePages: tables)
        }
        var command = debugSetup()
        command.watchByStepping = watches.needsStepping
        for (index, mode) in plan.sorted(by: { $0.key < $1.key }) {
            var c: RunCommand = command
            c.mode = mode
            threads[index].resume(c)
        }
    }

    /// Kicks every running vCPU and waits until all are parked. Their stops (mostly
    /// `.interrupted`) are left in `stops` for the controller to drain.
    public func pauseAll() {
        for thread in threads { thread.requestStop() }
        for thread in threads { thread.waitUntilParked() }
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
            if let state = try? threads[index].vcpu.getMPState(), state != UInt32(KVM_MP_STATE_UNINITIALIZED),
               state != UInt32(KVM_MP_STATE_INIT_RECEIVED) {
                status[index] = .runnable
            }
        default:
            if status[index] == .waitingForSIPI { status[index] = .runnable }
        }
    }

    private func debugSetup() -> RunCommand {
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
        return RunCommand(mode: .run, debugFlags: flags, debugRegs: regs, hardwareBreakpoints: armed,
                          blockIRQ: supportsBlockIRQ, watchByStepping: false)
    }

    // MARK: reset

    /// Back to the image's entry state: RAM cleared and reloaded, vCPUs reset, breakpoints kept
    /// (re-planted over the fresh image). Every vCPU must be parked.
    public func reset() throws(MachineError) {
        let planted = breakpoints.all
        for (virtual, _) in planted { removeSoftwareBreakpoint(at: virtual) }
        // A private anonymous mapping reads back as zeroes after MADV_DONTNEED.
        madvise(ram.base, Int(ram.size), MADV_DONTNEED)
        do {
            guest = try loadGuest(image: configuration.image, into: ram,
                                  commandLine: configuration.commandLine, cpuCount: configuration.cpuCount)
        } catch {
            throw .image(error)
        }
        do {
            try watches.reset()
            try applyEntryStates()
        } catch {
            throw .system(error)
        }
        for (virtual, physical) in planted {
            if let original = try? ram.read(at: physical, count: 1).first,
               breakpoints.insert(virtual: virtual, physical: physical, original: original) {
                try? ram.write([0xCC], at: physical)
            }
        }
    }
}

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
    var threads: [VCPUThread] = []
    let breakpoints = BreakpointTable()
    let watches: WatchTraps
    private var hardwareBreakpoints: [UInt64?] = [nil, nil, nil, nil]
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
        let serial = Serial16550(sink: configuration.serial)
        bus = PortBus(devices: [
            (0x3F8...0x3FF, serial),
            (0xF4...0xF4, DebugExit()),
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

    // MARK: exits served on the vCPU threads

    func handleIO(_ access: IOAccess, data: UnsafeMutableRawPointer) -> VCPUStop? {
        for i in 0..<max(access.count, 1) {
            let p = data.advanced(by: i * access.size)
            if access.isOut {
                var value: UInt32 = 0
                for b in 0..<min(access.size, 4) { value |= UInt32(p.load(fromByteOffset: b, as: UInt8.self)) << (8 * UInt32(b)) }
                switch bus.write(port: access.port, size: access.size, value: value) {
                case .none: break
                case .exit(let status): return .exit(status: status)
                case .powerOff: return .exit(status: 0)
                }
            } else {
                let value = bus.read(port: access.port, size: access.size)
                for b in 0..<min(access.size, 4) { p.storeBytes(of: UInt8(truncatingIfNeeded: value >> (8 * UInt32(b))), toByteOffset: b, as: UInt8.self) }
            }
        }
        return nil
    }

    func handleMMIO(vcpu: VCPU, address: UInt64, length: Int, isWrite: Bool, data: UInt64) throws -> VCPUStop? {
        if let stop = try watches.handle(vcpu: vcpu, address: address, length: length, isWrite: isWrite, data: data,
                                              planted: breakpoints) {
            return stop
        }
        return nil
    }

    /// The memory reads of the instruction at the vCPU's RIP, decoded (empty if unknown).
    /// With `regs` given, decodes with those registers (taken before a step) instead of the
    /// current ones; `oneIteration` counts a REP string instruction as the single iteration a
    /// trap-flag step runs.
    func decodedReads(vcpu: VCPU, regs given: kvm_regs? = nil, oneIteration: Bool = false) throws -> [MemoryAccess] {
        var regs = try given ?? vcpu.getRegs()
        if oneIteration { regs.rcx = 1 }
        let sregs = try vcpu.getSregs()
        let paging = PagingState(cr0: sregs.cr0, cr3: sregs.cr3, cr4: sregs.cr4, efer: sregs.efer)
        var bytes: [UInt8] = []
        let start = sregs.cs.base &+ regs.rip
        for i in 0..<15 {
            guard let t = PageWalker.translate(start &+ UInt64(i), paging: paging, memory: ram),
                  let b = try? ram.read(at: t.physical, count: 1).first else { break }
            bytes.append(breakpoints.original(atPhysical: t.physical) ?? b)
        }
        let mode: DecodeMode = sregs.cs.l != 0 ? .long64 : (sregs.cs.db != 0 ? .protected32 : .real16)
        let gpr = [regs.rax, regs.rcx, regs.rdx, regs.rbx, regs.rsp, regs.rbp, regs.rsi, regs.rdi,
                   regs.r8, regs.r9, regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15]
        let bases = [sregs.es.base, sregs.cs.base, sregs.ss.base, sregs.ds.base, sregs.fs.base, sregs.gs.base]
        let decoded = InstructionDecoder.decode(bytes, mode: mode, registers: DecodeRegisters(
            gpr: gpr, rip: regs.rip, segmentBases: bases, rflagsDF: regs.rflags & (1 << 10) != 0))
        return decoded?.accesses.filter(\.isRead) ?? []
    }

    /// The byte at `linear` is an int3 of the guest's own (not one we planted).
    func isGuestInt3(vcpu: VCPU, linear: UInt64) throws -> Bool {
        guard let t = PageWalker.translate(linear, paging: try vcpu.pagingState(), memory: ram),
              let byte = try? ram.read(at: t.physical, count: 1).first else { return false }
        return byte == 0xCC && !breakpoints.contains(physical: t.physical)
    }

    func isPlantedBreakpoint(vcpu: VCPU, linear: UInt64) throws -> Bool {
        guard let physical = PageWalker.translate(linear, paging: try vcpu.pagingState(), memory: ram) else {
            return false
        }
        return breakpoints.contains(physical: physical.physical)
    }

    // MARK: memory as gdb sees it

    /// Translates through vCPU `index`'s page tables (or not, in physical mode).
    public func translate(_ address: UInt64, vcpu index: Int) throws(SystemError) -> UInt64? {
        if physicalAddressing { return address < ram.size ? address : nil }
        return PageWalker.translate(address, paging: try threads[index].vcpu.pagingState(), memory: ram)?.physical
    }

    /// Reads guest memory, page by page; stops early at the first unmapped page. Planted
    /// breakpoints read as the bytes they replaced.
    public func readMemory(_ address: UInt64, count: Int, vcpu index: Int) throws(SystemError) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(count)
        let planted = breakpoints.plantedPhysical
        var cursor = address
        while result.count < count {
            let inPage = Int(0x1000 - (cursor & 0xFFF))
            let chunk = min(inPage, count - result.count)
            guard let physical = try translate(cursor, vcpu: index),
                  var bytes = try? ram.read(at: physical, count: chunk) else { break }
            if !planted.isEmpty {
                for i in 0..<chunk { if let original = planted[physical + UInt64(i)] { bytes[i] = original } }
            }
            result += bytes
            cursor &+= UInt64(chunk)
        }
        return result
    }

    /// Writes guest memory; a write over a planted breakpoint changes the byte under it and
    /// keeps the breakpoint. Returns false (having written nothing) if part is unmapped.
    public func writeMemory(_ bytes: [UInt8], at address: UInt64, vcpu index: Int) throws(SystemError) -> Bool {
        var pieces: [(UInt64, ArraySlice<UInt8>)] = []
        var offset = 0
        while offset < bytes.count {
            let cursor = address &+ UInt64(offset)
            let chunk = min(Int(0x1000 - (cursor & 0xFFF)), bytes.count - offset)
            guard let physical = try translate(cursor, vcpu: index), ram.contains(physical, count: chunk) else { return false }
            pieces.append((physical, bytes[offset..<offset + chunk]))
            offset += chunk
        }
        let planted = breakpoints.plantedPhysical
        for (physical, slice) in pieces {
            var data = Array(slice)
            for i in data.indices where planted[physical + UInt64(i)] != nil {
                breakpoints.updateOriginal(atPhysical: physical + UInt64(i), to: data[i])
                data[i] = 0xCC
            }
            try? ram.write(data, at: physical)
        }
        return true
    }

    // MARK: breakpoints

    public enum BreakpointError: Error, Sendable, Equatable { case unmapped, noFreeSlot }

    public func insertSoftwareBreakpoint(at address: UInt64, vcpu index: Int) throws -> Void {
        guard let physical = try translate(address, vcpu: index), physical < ram.size else {
            throw BreakpointError.unmapped
        }
        if breakpoints.physical(forVirtual: address) != nil { return }
        let original = try ram.read(at: physical, count: 1)[0]
        if breakpoints.insert(virtual: address, physical: physical, original: original) {
            try ram.write([0xCC], at: physical)
        }
    }

    public func removeSoftwareBreakpoint(at address: UInt64) {
        if let (physical, original) = breakpoints.remove(virtual: address) {
            try? ram.write([original], at: physical)
        }
    }

    public func insertHardwareBreakpoint(at address: UInt64) throws(BreakpointError) {
        if hardwareBreakpoints.contains(address) { return }
        guard let slot = hardwareBreakpoints.firstIndex(where: { $0 == nil }) else { throw .noFreeSlot }
        hardwareBreakpoints[slot] = address
    }

    public func removeHardwareBreakpoint(at address: UInt64) {
        if let slot = hardwareBreakpoints.firstIndex(of: address) { hardwareBreakpoints[slot] = nil }
    }

    /// Removes every breakpoint and watchpoint: on detach and when gdb goes away.
    public func removeAllBreakpoints() throws(SystemError) {
        for (virtual, _) in breakpoints.all { removeSoftwareBreakpoint(at: virtual) }
        hardwareBreakpoints = [nil, nil, nil, nil]
        try watches.removeAll()
    }

    // MARK: watchpoints

    public func insertWatchpoint(_ kind: WatchKind, at address: UInt64, length: Int, vcpu index: Int) throws {
        guard length > 0, length <= 1 << 20 else { throw BreakpointError.unmapped }
        var ranges: [(virtual: UInt64, physical: UInt64, length: Int)] = []
        var offset = 0
        while offset < length {
            let cursor = address &+ UInt64(offset)
            let chunk = min(Int(0x1000 - (cursor & 0xFFF)), length - offset)
            guard let physical = try translate(cursor, vcpu: index) else { throw BreakpointError.unmapped }
            ranges.append((cursor, physical, chunk))
            offset += chunk
        }
        try watches.insert(kind, virtual: address, length: length, pieces: ranges)
    }

    public func removeWatchpoint(_ kind: WatchKind, at address: UInt64, length: Int) throws {
        try watches.remove(kind, virtual: address, length: length)
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

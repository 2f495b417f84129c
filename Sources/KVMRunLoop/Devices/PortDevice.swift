/// What a device write asks the VMM to do beyond updating the device.
public enum DeviceEffect: Sendable, Equatable {
    case none
    /// End the VM with this process exit status (the debug-exit device); the VMM reduces it
    /// to the 8 bits an exit status has.
    case exit(status: Int32)
    /// The guest turned the machine off (ACPI-style power-off): end the VM with status 0.
    case powerOff
    /// The guest reset the machine (a reboot): end the VM with `resetStatus`.
    case reset
}

extension DeviceEffect {
    /// The exit status of a VM the guest reset: a rebooting guest is usually one that panicked
    /// (Linux's `panic=N`), so it is not 0; even, so it cannot be mistaken for a debug-exit code.
    public static let resetStatus: Int32 = 6
}

/// A device on the x86 port-I/O bus. Called from every vCPU thread, so a device guards its
/// own state; a call must be quick (it runs on the vCPU thread between two KVM_RUNs).
public protocol PortDevice: AnyObject, Sendable {
    /// A guest IN of `size` bytes (1, 2 or 4) at `port`, an absolute port number inside the
    /// range the device was registered for. The bus masks the result to `size` bytes.
    func read(port: UInt16, size: Int) -> UInt32
    /// A guest OUT of the low `size` bytes of `value` at `port`.
    func write(port: UInt16, size: Int, value: UInt32) -> DeviceEffect
}

/// All-ones of an access size: what an unclaimed port reads as, and the mask for a result.
@inline(__always)
func accessMask(size: Int) -> UInt32 {
    switch size {
    case 1: return 0xFF
    case 2: return 0xFFFF
    default: return 0xFFFF_FFFF
    }
}

/// QEMU's isa-debug-exit device (conventionally port 0xF4): a write of `v` ends the VM with
/// exit status (v << 1) | 1, so test kernels written for QEMU work unchanged. The status is
/// returned in full (it can exceed 8 bits); the VMM reduces it as the OS would.
public final class ISADebugExit: PortDevice {
    public init() {}

    public func read(port: UInt16, size: Int) -> UInt32 { 0 }

    public func write(port: UInt16, size: Int, value: UInt32) -> DeviceEffect {
        .exit(status: ISADebugExit.status(for: value))
    }

    /// (value << 1) | 1, in 32 bits, as QEMU computes it.
    public static func status(for value: UInt32) -> Int32 {
        Int32(bitPattern: (value << 1) | 1)
    }
}

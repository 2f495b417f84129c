import Synchronization

/// Routes guest port I/O to the device that claims the port. Immutable after creation, so
/// vCPU threads use it without a lock; each device locks its own state.
public final class PortBus: Sendable {
    private let devices: [(ports: ClosedRange<UInt16>, device: any PortDevice)]
    private let unclaimed = Atomic<UInt64>(0)

    /// `devices` must not claim overlapping port ranges (a programming error, checked).
    public init(devices: [(ClosedRange<UInt16>, any PortDevice)]) {
        let sorted = devices.sorted { $0.0.lowerBound < $1.0.lowerBound }
        for (a, b) in zip(sorted, sorted.dropFirst()) {
            precondition(!a.0.overlaps(b.0), "port ranges \(a.0) and \(b.0) overlap")
        }
        self.devices = sorted.map { (ports: $0.0, device: $0.1) }
    }

    /// The claimed port ranges in order, each with its device's type name (`monitor info mtree`).
    public var claims: [(ports: ClosedRange<UInt16>, device: String)] {
        devices.map { ($0.ports, String(describing: type(of: $0.device))) }
    }

    /// A guest IN. Unclaimed ports read as all ones (0xFF, 0xFFFF or 0xFFFFFFFF), like an
    /// empty ISA bus.
    public func read(port: UInt16, size: Int) -> UInt32 {
        guard let device = device(for: port) else {
            unclaimed.add(1, ordering: .relaxed)
            return accessMask(size: size)
        }
        return device.read(port: port, size: size) & accessMask(size: size)
    }

    /// A guest OUT. Writes to unclaimed ports are ignored (and counted).
    public func write(port: UInt16, size: Int, value: UInt32) -> DeviceEffect {
        guard let device = device(for: port) else {
            unclaimed.add(1, ordering: .relaxed)
            return .none
        }
        return device.write(port: port, size: size, value: value & accessMask(size: size))
    }

    /// True when a device claims `port` (for `monitor info` and for tests).
    public func isClaimed(_ port: UInt16) -> Bool { device(for: port) != nil }

    /// Accesses to ports no device claims, since the bus was created (for `monitor info exits`).
    public var unclaimedAccesses: UInt64 { unclaimed.load(ordering: .relaxed) }

    private func device(for port: UInt16) -> (any PortDevice)? {
        devices.first { $0.ports.contains(port) }?.device
    }
}

/// An ACPI PM1a control register reduced to power-off (conventionally ports 0x604-0x605,
/// where QEMU's PIIX4 puts PM1a_CNT): any write that sets SLP_EN (bit 13, 0x2000) turns the
/// machine off, whatever sleep type it asks for; no other sleep state exists here. So
/// `outw(0x604, 0x2000)`, the idiom test kernels use with QEMU, works; so does a byte write of
/// 0x20 to 0x605. Reads return 0.
public final class PowerOff: PortDevice {
    /// The first port of the 16-bit register.
    public let base: UInt16

    public static let sleepEnable: UInt32 = 0x2000

    public init(base: UInt16 = 0x604) { self.base = base }

    public func read(port: UInt16, size: Int) -> UInt32 { 0 }

    public func write(port: UInt16, size: Int, value: UInt32) -> DeviceEffect {
        // Place the written bytes where they fall in the 16-bit register.
        let shift = port >= base ? UInt32(port - base) * 8 : 0
        guard shift < 32 else { return .none }
        return (value << shift) & PowerOff.sleepEnable != 0 ? .powerOff : .none
    }
}

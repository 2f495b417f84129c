/// The registers a hardware-reduced ACPI platform powers off and resets through, as the FADT
/// gdbvmm writes for Linux guests describes them (ACPITables): an 8-bit sleep control register
/// (SLP_TYP in bits 4:2, SLP_EN in bit 5), an 8-bit sleep status register (WAK_STS in bit 7,
/// write-one-to-clear; nothing ever wakes here, so it reads 0), and the PC's reset control
/// register at 0xCF9 (writing 0x06 or 0x0E, a "hard" or "soft" reset with the reset bit 2 set).
/// Linux's `poweroff` writes SLP_TYP 5 (\_S5 in our DSDT) with SLP_EN; its `reboot` writes the
/// FADT's reset value to the reset register.
public final class ACPISleepControl: PortDevice {
    public static let port: UInt16 = 0x600
    public static let statusPort: UInt16 = 0x601
    /// The sleep type the DSDT's \_S5 package gives: the only state this machine can enter.
    public static let softOffType: UInt32 = 5
    static let sleepEnable: UInt32 = 0x20

    public init() {}

    public func read(port: UInt16, size: Int) -> UInt32 { 0 }

    public func write(port: UInt16, size: Int, value: UInt32) -> DeviceEffect {
        guard port == ACPISleepControl.port, value & ACPISleepControl.sleepEnable != 0 else { return .none }
        // S1-S4 would need the machine to sleep and wake; a guest asking for them gets no
        // answer, as on a board without those states.
        return (value >> 2) & 7 == ACPISleepControl.softOffType ? .powerOff : .none
    }
}

/// The PC reset control register (port 0xCF9, the FADT's RESET_REG) and the 8042 keyboard
/// controller's "pulse reset line" command (0xFE to port 0x64), the two ways kernels reboot a
/// PC. The 8042 itself is absent: its status port reads 0xFF, which is how drivers see that.
public final class ResetControl: PortDevice {
    public static let port: UInt16 = 0xCF9
    public static let keyboardControllerPort: UInt16 = 0x64
    /// What the FADT says to write: a hard reset (SYS_RST, bit 1, with RST_CPU, bit 2).
    public static let resetValue: UInt8 = 0x06

    public init() {}

    public func read(port: UInt16, size: Int) -> UInt32 {
        port == ResetControl.keyboardControllerPort ? 0xFFFF_FFFF : 0
    }

    public func write(port: UInt16, size: Int, value: UInt32) -> DeviceEffect {
        switch port {
        case ResetControl.port where value & 0x04 != 0: return .reset
        case ResetControl.keyboardControllerPort where value & 0xFF == 0xFE: return .reset
        default: return .none
        }
    }
}

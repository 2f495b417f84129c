/// Minimal ACPI tables for Linux guests, which find the RSDP by scanning the BIOS area
/// (0xE0000-0xFFFFF) when the boot protocol gives no pointer: an XSDT listing a MADT (one local
/// APIC per vCPU, the IOAPIC of KVM's in-kernel irqchip, IRQ 0 routed to GSI 2 as on a PC) and a
/// hardware-reduced FADT (power-off and reset registers) with a DSDT holding only \_S5.
/// Debian's cloud kernels have no MP-table parser, so without these they run on one CPU and no
/// IOAPIC.
public enum ACPITables {
    /// In the BIOS area, which the e820 maps gdbvmm gives mark reserved.
    public static let address: UInt64 = 0xE0000

    public static func build(cpuCount: Int) -> [UInt8] {
        let base = UInt32(address)
        // Layout: RSDP (36, padded to 48), XSDT, MADT, FADT, DSDT, each 16-byte aligned.
        let rsdpSize = 48
        let dsdt = header("DSDT", revision: 2, body: dsdtBody)
        let madt = header("APIC", revision: 4, body: madtBody(cpuCount: cpuCount))
        let xsdtSize = 36 + 8 * 2
        let xsdtAt = base + UInt32(rsdpSize)
        let madtAt = xsdtAt + UInt32(align16(xsdtSize))
        let fadtAt = madtAt + UInt32(align16(madt.count))
        let fadtSize = 276
        let dsdtAt = fadtAt + UInt32(align16(fadtSize))
        let fadt = header("FACP", revision: 6, body: fadtBody(dsdt: dsdtAt))
        let xsdt = header("XSDT", revision: 1, body: le64(UInt64(madtAt)) + le64(UInt64(fadtAt)))

        var rsdp = Array("RSD PTR ".utf8) + [0] + Array("GDBVMM".utf8) + [2] + le32(0)
        rsdp += le32(36) + le64(UInt64(xsdtAt)) + [0, 0, 0, 0]
        rsdp[8] = checksum(Array(rsdp[0..<20]))
        rsdp[32] = checksum(rsdp)

        var out = pad(rsdp, to: rsdpSize)
        out += pad(xsdt, to: align16(xsdt.count))
        out += pad(madt, to: align16(madt.count))
        out += pad(fadt, to: align16(fadt.count))
        out += dsdt
        return out
    }

    static func madtBody(cpuCount: Int) -> [UInt8] {
        var body = le32(0xFEE0_0000) + le32(1)   // local APIC address; PCAT_COMPAT (8259s present)
        for cpu in 0..<cpuCount {
            body += [0, 8, UInt8(truncatingIfNeeded: cpu), UInt8(truncatingIfNeeded: cpu)] + le32(1)  // enabled
        }
        body += [1, 12, UInt8(truncatingIfNeeded: cpuCount), 0] + le32(0xFEC0_0000) + le32(0)     // IOAPIC, GSI base 0
        body += [2, 10, 0, 0] + le32(2) + [0, 0]                                                   // IRQ 0 -> GSI 2
        return body
    }

    /// The DSDT's only object, `Name (_S5, Package () { 5, 5, 0, 0 })`: the sleep type of soft
    /// off, without which Linux does not power off through ACPI.
    static let dsdtBody: [UInt8] = [0x08] + Array("_S5_".utf8)
        + [0x12, 0x08, 0x04, 0x0A, UInt8(ACPISleepControl.softOffType), 0x0A, UInt8(ACPISleepControl.softOffType), 0x00, 0x00]

    /// A Generic Address Structure for an 8-bit register in system I/O space.
    static func ioPort(_ port: UInt16) -> [UInt8] { [1, 8, 0, 1] + le64(UInt64(port)) }

    /// FADT revision 6: only the fields a hardware-reduced platform uses, with the sleep control
    /// and status registers (power-off) and the reset register (reboot) of ACPISleepAndReset.
    static func fadtBody(dsdt: UInt32) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: 276 - 36)
        func put(_ bytes: [UInt8], at offset: Int) { body.replaceSubrange((offset - 36)..<(offset - 36 + bytes.count), with: bytes) }
        put(le32(dsdt), at: 40)                 // DSDT
        put(le32(1 << 20 | 1 << 10), at: 112)   // flags: HW_REDUCED_ACPI, RESET_REG_SUP
        put(ioPort(ResetControl.port), at: 116) // RESET_REG
        put([ResetControl.resetValue], at: 128) // RESET_VALUE
        put(ioPort(ACPISleepControl.port), at: 244)        // SLEEP_CONTROL_REG
        put(ioPort(ACPISleepControl.statusPort), at: 256)  // SLEEP_STATUS_REG
        put([5], at: 131)                       // FADT minor version 5 with revision 6 (ACPI 6.5)
        put(le64(UInt64(dsdt)), at: 140)        // X_DSDT
        put(Array("GDBVMM".utf8) + [0, 0], at: 268)  // hypervisor vendor identity
        return body
    }

    static func header(_ signature: String, revision: UInt8, body: [UInt8]) -> [UInt8] {
        var table = Array(signature.utf8) + le32(UInt32(36 + body.count)) + [revision, 0]
        table += Array("GDBVMM".utf8) + Array("GDBVMMAC".utf8) + le32(1) + Array("GDBV".utf8) + le32(1)
        table += body
        table[9] = checksum(table)
        return table
    }

    static func checksum(_ bytes: [UInt8]) -> UInt8 { 0 &- bytes.reduce(0, &+) }
    static func align16(_ n: Int) -> Int { (n + 15) & ~15 }
    static func pad(_ b: [UInt8], to n: Int) -> [UInt8] { b + [UInt8](repeating: 0, count: n - b.count) }
    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    static func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}

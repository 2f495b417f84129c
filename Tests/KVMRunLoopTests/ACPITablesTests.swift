import Testing
@testable import KVMRunLoop

/// The ACPI tables Linux guests find by scanning the BIOS area.
@Suite("ACPI tables")
struct ACPITablesTests {
    func le32(_ b: [UInt8], _ at: Int) -> Int { (0..<4).reduce(0) { $0 | Int(b[at + $1]) << (8 * $1) } }
    func le64(_ b: [UInt8], _ at: Int) -> Int { (0..<8).reduce(0) { $0 | Int(b[at + $1]) << (8 * $1) } }
    func sum(_ b: ArraySlice<UInt8>) -> UInt8 { b.reduce(0, &+) }

    /// The table at a physical address, with its length from its header.
    func table(_ bytes: [UInt8], at physical: Int) -> ArraySlice<UInt8> {
        let offset = physical - Int(ACPITables.address)
        return bytes[offset..<(offset + le32(bytes, offset + 4))]
    }

    @Test("RSDP, XSDT, MADT, FADT and DSDT: signatures, lengths, checksums and pointers", arguments: [1, 2, 8, 64])
    func structure(cpus: Int) {
        let bytes = ACPITables.build(cpuCount: cpus)
        #expect(Array(bytes[0..<8]) == Array("RSD PTR ".utf8))
        #expect(bytes[15] == 2, "ACPI 2.0+ RSDP")
        #expect(sum(bytes[0..<20]) == 0 && sum(bytes[0..<36]) == 0)
        #expect(le32(bytes, 20) == 36)
        let xsdt = table(bytes, at: le64(bytes, 24))
        #expect(Array(xsdt.prefix(4)) == Array("XSDT".utf8) && sum(xsdt) == 0)
        let pointers = (0..<((xsdt.count - 36) / 8)).map { le64(Array(xsdt), 36 + $0 * 8) }
        let tables = pointers.map { table(bytes, at: $0) }
        #expect(tables.map { String(decoding: $0.prefix(4), as: UTF8.self) } == ["APIC", "FACP"])
        #expect(tables.allSatisfy { sum($0) == 0 })
        // MADT: one enabled local APIC per vCPU, the IOAPIC, IRQ 0 -> GSI 2.
        let madt = Array(tables[0])
        #expect(le32(madt, 36) == 0xFEE0_0000)
        var offset = 44, lapics: [Int] = [], ioapics = 0, overrides: [(Int, Int)] = []
        while offset < madt.count {
            switch madt[offset] {
            case 0: if le32(madt, offset + 4) & 1 == 1 { lapics.append(Int(madt[offset + 3])) }
            case 1: ioapics += 1; #expect(le32(madt, offset + 4) == 0xFEC0_0000)
            case 2: overrides.append((Int(madt[offset + 3]), le32(madt, offset + 4)))
            default: Issue.record("unexpected MADT entry type \(madt[offset])")
            }
            offset += Int(madt[offset + 1])
        }
        #expect(offset == madt.count)
        #expect(lapics == Array(0..<cpus))
        #expect(ioapics == 1)
        #expect(overrides.count == 1 && overrides[0] == (0, 2))
        // FADT: hardware-reduced, pointing at the DSDT (both the 32- and the 64-bit field).
        let fadt = Array(tables[1])
        #expect(fadt.count == 276 && fadt[8] == 6)
        #expect(le32(fadt, 112) & (1 << 20) != 0)
        #expect(le32(fadt, 40) == le64(fadt, 140))
        let dsdt = table(bytes, at: le64(fadt, 140))
        #expect(Array(dsdt.prefix(4)) == Array("DSDT".utf8) && sum(dsdt) == 0)
        #expect(bytes.count <= 0x10000, "the tables fit below 0xF0000")
    }

    @Test("The FADT's reset and sleep registers lead to the devices that end the VM, and \\_S5 names their sleep type")
    func powerOffAndReset() {
        let bytes = ACPITables.build(cpuCount: 1)
        let xsdt = Array(table(bytes, at: le64(bytes, 24)))
        let fadt = Array(table(bytes, at: le64(xsdt, 44)))
        // A Generic Address Structure: system I/O, 8 bits wide, byte access.
        func port(_ offset: Int) -> UInt16? {
            guard Array(fadt[offset..<offset + 4]) == [1, 8, 0, 1] else { return nil }
            return UInt16(le64(fadt, offset + 4))
        }
        #expect(le32(fadt, 112) & (1 << 10) != 0, "RESET_REG_SUP")
        let reset = port(116), sleepControl = port(244), sleepStatus = port(256)
        #expect(reset == 0xCF9 && fadt[128] == 0x06)
        #expect(sleepControl != nil && sleepStatus != nil)
        // What Linux writes: the reset value, then SLP_TYP from \_S5 with SLP_EN.
        #expect(ResetControl().write(port: reset ?? 0, size: 1, value: UInt32(fadt[128])) == .reset)
        let dsdt = Array(table(bytes, at: le64(fadt, 140)))
        let body = Array(dsdt.dropFirst(36))
        #expect(Array(body.prefix(5)) == [0x08] + Array("_S5_".utf8))
        #expect(body[5] == 0x12 && Int(body[6]) == body.count - 6, "the package length covers the rest")
        let slpTyp = UInt32(body[9])
        #expect(body[8] == 0x0A && slpTyp == 5)
        let device = ACPISleepControl()
        #expect(device.write(port: sleepStatus ?? 0, size: 1, value: 0x80) == .none, "clearing WAK_STS")
        #expect(device.write(port: sleepControl ?? 0, size: 1, value: slpTyp << 2) == .none, "no SLP_EN yet")
        #expect(device.write(port: sleepControl ?? 0, size: 1, value: slpTyp << 2 | 0x20) == .powerOff)
        #expect(device.write(port: sleepControl ?? 0, size: 1, value: 3 << 2 | 0x20) == .none, "S3 is not offered")
        #expect(ResetControl().write(port: 0x64, size: 1, value: 0xFE) == .reset)
        #expect(ResetControl().write(port: 0x64, size: 1, value: 0xAD) == .none)
        #expect(ResetControl().read(port: 0x64, size: 1) & 0xFF == 0xFF, "no 8042 behind it")
    }
}

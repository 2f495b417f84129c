// target.xml, served through `qXfer:features:read`, one document per TargetArchitecture. The
// registers come from the RegisterLayout with explicit regnum attributes, so gdb's numbering is the
// `p`/`P` numbering and the `g` layout. The type definitions are those of gdb's own
// features/i386/64bit-*.xml and 32bit-*.xml, so gdb shows eflags and mxcsr as flags and xmm as
// vectors, exactly as for a native process.

enum TargetDescription {
    /// The only annex we serve; gdb asks for it first and follows no includes.
    static let annex = "target.xml"

    static func xml(for architecture: TargetArchitecture) -> String {
        switch architecture {
        case .x86_64: x86_64
        case .i386: i386
        }
    }

    static func bytes(for architecture: TargetArchitecture) -> [UInt8] {
        switch architecture {
        case .x86_64: x86_64Bytes
        case .i386: i386Bytes
        }
    }

    /// The document for a layout, with the guest CPU's extensions.
    static func xml(describing layout: RegisterLayout) -> String { document(for: layout) }

    private static let x86_64 = document(for: .x86_64)
    private static let i386 = document(for: .i386)
    private static let x86_64Bytes = Array(x86_64.utf8)
    private static let i386Bytes = Array(i386.utf8)

    /// The name gdb's `set architecture` knows the layout by.
    static func architectureName(_ architecture: TargetArchitecture) -> String {
        switch architecture {
        case .x86_64: "i386:x86-64"
        case .i386: "i386"
        }
    }

    private static func document(for layout: RegisterLayout) -> String {
        var xml = """
            <?xml version="1.0"?>
            <!DOCTYPE target SYSTEM "gdb-target.dtd">
            <target version="1.0">
              <architecture>\(architectureName(layout.architecture))</architecture>

            """
        // Features in the order of their first register; each feature's registers are
        // contiguous, so the document lists them in regnum order (the order LLDB lays out).
        var features: [RegisterFeature] = []
        for reg in layout.registers where !features.contains(reg.feature) { features.append(reg.feature) }
        for feature in features {
            xml += "  <feature name=\"\(feature.rawValue)\">\n"
            xml += typeDefinitions(for: feature, in: layout)
            for (regnum, reg) in layout.registers.enumerated() where reg.feature == feature {
                xml += "    <reg name=\"\(reg.name)\" bitsize=\"\(reg.bitSize)\" type=\"\(reg.type)\""
                if let group = reg.group { xml += " group=\"\(group)\"" }
                xml += " regnum=\"\(regnum)\""
                // gdb ignores these; LLDB reads them: generic roles, unwind numbers, and vectors
                // it cannot tell from a union or a 256-bit type.
                if let generic = reg.generic { xml += " generic=\"\(generic)\"" }
                if let dwarf = reg.dwarf { xml += " ehframe_regnum=\"\(dwarf)\" dwarf_regnum=\"\(dwarf)\"" }
                if vectorTypes.contains(reg.type) { xml += " encoding=\"vector\" format=\"vector-uint8\"" }
                xml += "/>\n"
            }
            xml += "  </feature>\n"
        }
        xml += "</target>\n"
        return xml
    }

    private static let vectorTypes: Set = ["vec128", "uint128", "v2ui128"]

    private static func typeDefinitions(for feature: RegisterFeature, in layout: RegisterLayout) -> String {
        // A flags type is as wide as the registers that use it: 8 bytes on x86-64, 4 on i386.
        func size(_ type: String) -> Int { layout.registers.first { $0.type == type }?.byteCount ?? 4 }
        return switch feature {
        case .core:
            flags("i386_eflags", size: 4, [
                ("CF", 0), ("", 1), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8), ("IF", 9),
                ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17), ("AC", 18), ("VIF", 19),
                ("VIP", 20), ("ID", 21),
            ])
        case .sse:
            vec128 + flags("i386_mxcsr", size: 4, [
                ("IE", 0), ("DE", 1), ("ZE", 2), ("OE", 3), ("UE", 4), ("PE", 5), ("DAZ", 6), ("IM", 7),
                ("DM", 8), ("ZM", 9), ("OM", 10), ("UM", 11), ("PM", 12), ("FZ", 15),
            ])
        case .avx512:
            // A type belongs to its feature: xmm16-31 need vec128 here too, as in gdb's
            // 64bit-avx512.xml.
            (layout.registers.contains { $0.feature == .avx512 && $0.type == "vec128" } ? vec128 : "")
                + "    <vector id=\"v2ui128\" type=\"uint128\" count=\"2\"/>\n"
        case .segments, .avx, .pkeys, .msr, .debug:
            ""
        case .system:
            flags("i386_cr0", size: size("i386_cr0"), [
                ("PE", 0), ("MP", 1), ("EM", 2), ("TS", 3), ("ET", 4), ("NE", 5), ("WP", 16), ("AM", 18),
                ("NW", 29), ("CD", 30), ("PG", 31),
            ])
            + flags("i386_cr4", size: size("i386_cr4"), [
                ("VME", 0), ("PVI", 1), ("TSD", 2), ("DE", 3), ("PSE", 4), ("PAE", 5), ("MCE", 6),
                ("PGE", 7), ("PCE", 8), ("OSFXSR", 9), ("OSXMMEXCPT", 10), ("UMIP", 11), ("LA57", 12),
                ("VMXE", 13), ("SMXE", 14), ("FSGSBASE", 16), ("PCIDE", 17), ("OSXSAVE", 18),
                ("SMEP", 20), ("SMAP", 21), ("PKE", 22),
            ])
            + flags("i386_efer", size: size("i386_efer"), [
                ("SCE", 0), ("LME", 8), ("LMA", 10), ("NXE", 11), ("SVME", 12), ("LMSLE", 13),
                ("FFXSR", 14), ("TCE", 15),
            ])
        }
    }

    /// gdb's 128-bit vector union (features/i386/64bit-sse.xml).
    private static let vec128 = """
                <vector id="v8bf16" type="bfloat16" count="8"/>
                <vector id="v8h" type="ieee_half" count="8"/>
                <vector id="v4f" type="ieee_single" count="4"/>
                <vector id="v2d" type="ieee_double" count="2"/>
                <vector id="v16i8" type="int8" count="16"/>
                <vector id="v8i16" type="int16" count="8"/>
                <vector id="v4i32" type="int32" count="4"/>
                <vector id="v2i64" type="int64" count="2"/>
                <union id="vec128">
                  <field name="v8_bfloat16" type="v8bf16"/>
                  <field name="v8_half" type="v8h"/>
                  <field name="v4_float" type="v4f"/>
                  <field name="v2_double" type="v2d"/>
                  <field name="v16_int8" type="v16i8"/>
                  <field name="v8_int16" type="v8i16"/>
                  <field name="v4_int32" type="v4i32"/>
                  <field name="v2_int64" type="v2i64"/>
                  <field name="uint128" type="uint128"/>
                </union>

            """

    /// A `<flags>` type of single-bit fields.
    private static func flags(_ id: String, size: Int, _ fields: [(String, Int)]) -> String {
        var text = "    <flags id=\"\(id)\" size=\"\(size)\">\n"
        for (name, bit) in fields {
            text += "      <field name=\"\(name)\" start=\"\(bit)\" end=\"\(bit)\"/>\n"
        }
        return text + "    </flags>\n"
    }
}

/// The `m`/`l` reply of a `qXfer` read: the window [offset, offset + length) of `data`, prefixed
/// `l` when it reaches the end (or starts past it) and `m` when more follows.
func xferWindow(_ data: [UInt8], offset: Int, length: Int) -> [UInt8] {
    guard offset < data.count else { return [UInt8(ascii: "l")] }
    let available = data.count - offset
    let count = min(length, available)
    var out: [UInt8] = [count == available ? UInt8(ascii: "l") : UInt8(ascii: "m")]
    out.append(contentsOf: data[offset..<(offset + count)])
    return out
}

import Foundation
import Testing
@testable import RSP
#if canImport(FoundationXML)
import FoundationXML
#endif

@Suite struct TargetDescriptionTests {
    /// $GDBVMM_TEST_GDB, else gdb as the shell finds it (the end-to-end suites look it up the
    /// same way).
    static let gdbPath: String? = {
        if let chosen = ProcessInfo.processInfo.environment["GDBVMM_TEST_GDB"], !chosen.isEmpty { return chosen }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(directory)/gdb") {
            return "\(directory)/gdb"
        }
        FileHandle.standardError.write(Data("\n*** WARNING: gdb is not on PATH: realGDBAcceptsIt is SKIPPED (apt-get install -y gdb) ***\n\n".utf8))
        return nil
    }()

    @Test(arguments: TargetArchitecture.allCases)
    func isWellFormedWithNumberedRegisters(architecture: TargetArchitecture) throws {
        try checkWellFormed(RegisterLayout.of(architecture), Data(TargetDescription.bytes(for: architecture)))
        let document = try XMLDocument(data: Data(TargetDescription.bytes(for: architecture)))
        let root = try #require(document.rootElement())
        #expect(root.name == "target")
        let name = try root.nodes(forXPath: "architecture").first?.stringValue
        #expect(name == (architecture == .x86_64 ? "i386:x86-64" : "i386"))
        let features = try root.nodes(forXPath: "feature").compactMap { ($0 as? XMLElement)?.attribute(forName: "name")?.stringValue }
        switch architecture {
        case .x86_64:
            #expect(features == ["org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse", "org.gnu.gdb.i386.segments", "org.gnu.gdb.i386.sys",
                                 "org.gnu.gdb.i386.sys.msr", "org.gnu.gdb.i386.sys.debug"])
        case .i386:
            // No segments feature: see RegisterLayout.i386.
            #expect(features == ["org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse", "org.gnu.gdb.i386.sys",
                                 "org.gnu.gdb.i386.sys.msr", "org.gnu.gdb.i386.sys.debug"])
        }
        let regs = try root.nodes(forXPath: "feature/reg").compactMap { $0 as? XMLElement }
        #expect(regs.count == (architecture == .x86_64 ? 92 : 71))
    }

    /// With every extension: gdb's avx, avx512 and pkeys features, and vec128 defined again in
    /// avx512 for xmm16-31 (types are per feature).
    @Test(arguments: TargetArchitecture.allCases)
    func extensionsAreGDBFeatures(architecture: TargetArchitecture) throws {
        let layout = RegisterLayout.of(architecture, extensions: .all)
        let data = Data(TargetDescription.xml(describing: layout).utf8)
        try checkWellFormed(layout, data)
        let root = try #require(try XMLDocument(data: data).rootElement())
        let features = try root.nodes(forXPath: "feature").compactMap { ($0 as? XMLElement)?.attribute(forName: "name")?.stringValue }
        for name in ["org.gnu.gdb.i386.avx", "org.gnu.gdb.i386.avx512", "org.gnu.gdb.i386.pkeys"] {
            #expect(features.contains(name), "\(name)")
        }
        let avx512Types = try root.nodes(forXPath: "feature[@name='org.gnu.gdb.i386.avx512']/*[@id]")
            .compactMap { ($0 as? XMLElement)?.attribute(forName: "id")?.stringValue }
        #expect(avx512Types.contains("v2ui128"))
        #expect(avx512Types.contains("vec128") == (architecture == .x86_64))
        // LLDB's fields: generic roles and DWARF numbers on the core registers, vectors marked.
        let rip = try #require(try root.nodes(forXPath: "feature/reg[@generic='pc']").first as? XMLElement)
        #expect(rip.attribute(forName: "name")?.stringValue == (architecture == .x86_64 ? "rip" : "eip"))
        #expect(try root.nodes(forXPath: "feature/reg[@generic='sp']").count == 1)
        let ymm0h = try #require(try root.nodes(forXPath: "feature/reg[@name='ymm0h']").first as? XMLElement)
        #expect(ymm0h.attribute(forName: "encoding")?.stringValue == "vector")
    }

    private func checkWellFormed(_ layout: RegisterLayout, _ data: Data) throws {
        let document = try XMLDocument(data: data)
        let root = try #require(document.rootElement())
        let regs = try root.nodes(forXPath: "feature/reg").compactMap { $0 as? XMLElement }
        #expect(regs.count == layout.registers.count)
        for (n, reg) in regs.enumerated() {
            #expect(reg.attribute(forName: "regnum")?.stringValue == "\(n)")
            #expect(reg.attribute(forName: "name")?.stringValue == layout.registers[n].name)
            #expect(reg.attribute(forName: "bitsize")?.stringValue == "\(layout.registers[n].bitSize)")
        }
        // A flags type is as wide as its registers.
        for flags in try root.nodes(forXPath: "feature/flags").compactMap({ $0 as? XMLElement }) {
            let id = try #require(flags.attribute(forName: "id")?.stringValue)
            let size = flags.attribute(forName: "size")?.stringValue
            for reg in layout.registers where reg.type == id { #expect(size == "\(reg.byteCount)", "\(id)") }
        }
        // Every non-builtin type a register uses is defined in the document.
        let defined = Set(try root.nodes(forXPath: "feature/*[@id]").compactMap { ($0 as? XMLElement)?.attribute(forName: "id")?.stringValue })
        let builtin: Set = ["int", "int32", "int64", "uint32", "uint64", "uint128", "data_ptr", "code_ptr", "i387_ext"]
        for reg in layout.registers {
            #expect(builtin.contains(reg.type) || defined.contains(reg.type), "\(reg.name): \(reg.type)")
        }
    }

    @Test func windowsCoverTheDocument() {
        let data = TargetDescription.bytes(for: .x86_64)
        var assembled: [UInt8] = []
        var offset = 0
        while true {
            let reply = xferWindow(data, offset: offset, length: 100)
            assembled += reply.dropFirst()
            offset += reply.count - 1
            if reply.first == UInt8(ascii: "l") { break }
            #expect(reply.first == UInt8(ascii: "m") && reply.count == 101)
        }
        #expect(assembled == data)
        #expect(xferWindow(data, offset: data.count, length: 10) == [UInt8(ascii: "l")])
        #expect(xferWindow(data, offset: Int.max, length: Int.max) == [UInt8(ascii: "l")])
        #expect(xferWindow(data, offset: data.count - 1, length: Int.max) == [UInt8(ascii: "l"), data[data.count - 1]])
    }

    /// The real gdb must load the description without a word of complaint and number the
    /// registers as the `g` packet lays them out, under the OS ABI it defaults to on Linux (which
    /// it also picks for a kernel ELF without an ABI note) and under none. Skipped, with a warning
    /// on stderr, when there is no gdb on PATH.
    @Test(.enabled(if: TargetDescriptionTests.gdbPath != nil, "needs gdb on PATH (apt-get install -y gdb)"),
          arguments: TargetArchitecture.allCases, ["GNU/Linux", "none"])
    func realGDBAcceptsIt(architecture: TargetArchitecture, osabi: String) throws {
        try gdbAccepts(RegisterLayout.of(architecture), osabi: osabi)
        try gdbAccepts(RegisterLayout.of(architecture, extensions: .all), osabi: osabi)
    }

    private func gdbAccepts(_ layout: RegisterLayout, osabi: String) throws {
        let architecture = layout.architecture
        let tag = "\(architecture)-\(osabi == "none" ? "none" : "linux")-\(layout.registers.count)"
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-rsp-\(getpid())-\(tag)-target.xml")
        try Data(TargetDescription.xml(describing: layout).utf8).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let gdb = Process()
        gdb.executableURL = URL(fileURLWithPath: try #require(TargetDescriptionTests.gdbPath))
        gdb.arguments = ["-nx", "-batch", "-ex", "set osabi \(osabi)",
                         "-ex", "set architecture \(TargetDescription.architectureName(architecture))",
                         "-ex", "set tdesc filename \(path.path)", "-ex", "maint print remote-registers"]
        let out = Pipe(), err = Pipe()
        gdb.standardOutput = out
        gdb.standardError = err
        try gdb.run()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        gdb.waitUntilExit()
        #expect(gdb.terminationStatus == 0)
        #expect(stderr.isEmpty, "gdb complained: \(stderr)")
        // Columns: Name Nr Rel Offset Size Type Rmt-Nr g/G-Offset.
        var seen: [String: (Int, Int)] = [:]
        for line in stdout.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 8, let remote = Int(f[6]), let offset = Int(f[7]) { seen[String(f[0])] = (remote, offset) }
        }
        for (n, reg) in layout.registers.enumerated() {
            let entry = seen[reg.name]
            #expect(entry?.0 == n && entry?.1 == layout.offsets[n], "\(reg.name): \(String(describing: entry))")
        }
    }
}

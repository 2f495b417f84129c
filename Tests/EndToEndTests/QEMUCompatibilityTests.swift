import Foundation
import Glibc
import Testing

/// gdbvmm against QEMU's own gdbstub on the same guest (demo-multiboot, which QEMU boots with
/// -kernel too): QEMU's maintenance packets and the monitor commands tools parse, field by field,
/// and the way pwndbg and GEF decide they talk to a full-system QEMU.
@Suite("QEMU compatibility", .serialized, .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct QEMUCompatibilityTests {
    static let qemuPath: String? = {
        let r = Harness.run(["sh", "-c", "command -v qemu-system-x86_64"])
        return r.status == 0 ? r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : nil
    }()

    /// Stops at `compute`'s first instruction, runs every command, writes what each printed to
    /// a JSON file, and what pwndbg's and GEF's own detection code concludes (copied from
    /// pwndbg/gdblib/qemu.py, vmmap.py, regs.py and gef.py).
    static let probe = #"""
    import gdb, json, re, sys
    out = {}
    def mon(cmd):
        try:
            return gdb.execute("monitor " + cmd, to_string=True).replace("\r\n", "\n")
        except gdb.error as e:
            return "gdb.error: %s" % e
    def packet(p):
        return gdb.execute("maintenance packet " + p, to_string=True, from_tty=False)
    gdb.execute("break *compute")
    gdb.execute("continue")
    for cmd in ["info registers", "info mem", "info tlb", "gva2gpa 0x100000", "gva2gpa 0x3fffffff",
                "gva2gpa 0x40000000", "gva2gpa 0xffff800000000000", "gva2gpa", "gva2gpa 0xzz", "gva2gpa $pc", "gva2gpa $bogus", "gva2gpa $cs.base+0x100000",
                "xp /4xg 0x100000", "xp /8xb 0x100000", "xp /3xw 0x100000", "xp /2xh 0x100000",
                "xp 0x100000", "xp /2c 0x100000", "xp /2d 0x100000", "xp /2u 0x100000", "xp /2o 0x100000",
                "xp /20xb 0x100000", "xp /1xg $sp", "xp /5xw 0x8000000", "xp /2xz 0x100000", "xp", "bogus"]:
        out[cmd] = mon(cmd)
    out["sp"] = int(gdb.parse_and_eval("$sp"))
    out["threads"] = gdb.execute("info threads", to_string=True)
    # pwndbg: is_qemu, is_usermode (pwndbg/gdblib/qemu.py)
    out["pwndbg.is_qemu"] = "ENABLE=" in packet("Qqemu.sstepbits")
    out["pwndbg.is_usermode"] = "Text=" in packet("qOffsets")
    # GEF: is_qemu_system (gef.py)
    out["gef.is_qemu_system"] = 'received: ""' in packet("qOffsets")
    # pwndbg: kernel_vmmap_via_monitor_info_mem (pwndbg/gdblib/vmmap.py)
    pages = []
    lines = gdb.execute("monitor info mem", to_string=True).splitlines()
    if not (len(lines) == 1 and lines[0] == "PG disabled"):
        for line in lines:
            dash, space, rspace = line.index("-"), line.index(" "), line.rindex(" ")
            start, end = int(line[:dash], 16), int(line[dash + 1:space], 16)
            size, perm = int(line[space + 1:rspace], 16), line[rspace + 1:]
            pages.append([start, size, end - start == size, perm])
    out["pwndbg.vmmap"] = pages
    # GEF: parse_monitor_info_mem
    sections = []
    for line in gdb.execute("monitor info mem", to_string=True).splitlines():
        try:
            ranges, off, perms = line.split()
            sections.append([int(s, 16) for s in ranges.split("-")] + [int(off, 16), perms])
        except ValueError:
            continue
    out["gef.sections"] = sections
    # pwndbg: get_qemu_register (pwndbg/gdblib/regs.py) for the descriptor tables
    regs = gdb.execute("monitor info registers", to_string=True)
    for name in ["GDT", "IDT"]:
        m = re.search(rf'{name}=\s+([\da-fA-F]+)\s+([\da-fA-F]+)', regs)
        out["pwndbg." + name] = [int(m.group(1), 16), int(m.group(2), 16)] if m else None
    json.dump(out, open(OUTPUT, "w"), indent=1)
    gdb.execute("kill")
    """#

    /// Runs the probe against a stub on `target`; returns what it wrote.
    static func runProbe(target: String) throws -> [String: Any] {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-probe-\(UUID().uuidString).json")
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-probe-\(UUID().uuidString).py")
        defer { try? FileManager.default.removeItem(at: output); try? FileManager.default.removeItem(at: script) }
        try ("OUTPUT = \"\(output.path)\"\n" + probe).write(to: script, atomically: true, encoding: .utf8)
        let r = Harness.gdb("target remote \(target)\nsource \(script.path)", symbols: Harness.guest("demo-multiboot"))
        guard let data = FileManager.default.contents(atPath: output.path),
              let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw HarnessError(message: "the probe wrote nothing; gdb said:\n\(r.output)")
        }
        return json
    }

    /// QEMU on a Unix socket with the guest held at reset (-S); returns the process and socket.
    static func startQEMU(accel: String) throws -> (Process, String)? {
        guard let qemuPath else { return nil }
        let socket = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-qemu-\(UUID().uuidString.prefix(8)).sock").path
        let qemu = Process()
        qemu.executableURL = URL(fileURLWithPath: qemuPath)
        qemu.arguments = ["-accel", accel, "-display", "none", "-monitor", "none", "-no-reboot", "-net", "none",
                          "-serial", "none", "-m", "128M", "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
                          "-kernel", Harness.guest("demo-multiboot"), "-S", "-gdb", "unix:\(socket),server=on,wait=off"]
        qemu.standardOutput = FileHandle.nullDevice
        qemu.standardError = FileHandle.nullDevice
        try qemu.run()
        // QEMU creates the socket before it starts the machine; wait for the file, not a time.
        for _ in 0..<3000 where !FileManager.default.fileExists(atPath: socket) && qemu.isRunning { usleep(10_000) }
        guard FileManager.default.fileExists(atPath: socket) else {
            qemu.terminate()
            throw HarnessError(message: "QEMU (\(accel)) did not create its gdb socket")
        }
        return (qemu, socket)
    }

    static func skipWithoutQEMU() -> Bool {
        guard qemuPath == nil else { return false }
        Harness.warn("QEMU comparison SKIPPED: qemu-system-x86_64 is not installed (apt-get install -y qemu-system-x86)")
        return true
    }

    /// `info registers` lines by their first register name, segment flag bits 19:16 cleared:
    /// TCG keeps the descriptor's limit bits there, KVM's segments (so QEMU under KVM too) have none.
    static func registerFields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            var value = String(line)
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            if ["ES", "CS", "SS", "DS", "FS", "GS", "LDT", "TR"].contains(key) {
                var parts = value.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
                if let i = parts.lastIndex(where: { $0.count == 8 && $0.allSatisfy(\.isHexDigit) }) {
                    parts[i] = String(parts[i].prefix(3)) + "0" + String(parts[i].dropFirst(4))
                }
                value = parts.joined(separator: " ")
            }
            fields[key] = value
        }
        return fields
    }

    @Test("monitor commands: gdbvmm's answers match QEMU's, field by field, at the same guest instruction")
    func monitorMatchesQEMU() throws {
        if Self.skipWithoutQEMU() { return }
        guard let (qemu, socket) = try Self.startQEMU(accel: "tcg") else { return }
        defer { if qemu.isRunning { qemu.terminate() }; qemu.waitUntilExit(); try? FileManager.default.removeItem(atPath: socket) }
        let theirs = try Self.runProbe(target: socket)
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "--serial", "none", Harness.guest("demo-multiboot")])
        let ours = try Self.runProbe(target: vmm.gdbTarget)
        _ = vmm.wait()

        // Exactly QEMU's text.
        for command in ["info mem", "info tlb", "gva2gpa 0x100000", "gva2gpa 0x3fffffff", "gva2gpa 0x40000000",
                        "gva2gpa 0xffff800000000000", "gva2gpa", "gva2gpa 0xzz", "gva2gpa $pc", "gva2gpa $bogus", "gva2gpa $cs.base+0x100000",
                        "xp /4xg 0x100000", "xp /8xb 0x100000", "xp /3xw 0x100000", "xp /2xh 0x100000", "xp 0x100000",
                        "xp /2c 0x100000", "xp /2d 0x100000", "xp /2u 0x100000", "xp /2o 0x100000", "xp /20xb 0x100000",
                        "xp /1xg $sp", "xp /5xw 0x8000000", "xp /2xz 0x100000", "xp"] {
            #expect(ours[command] as? String == theirs[command] as? String, "monitor \(command)")
        }
        #expect((ours["info mem"] as? String)?.isEmpty == false)
        #expect(ours["sp"] as? Int == theirs["sp"] as? Int)
        // gdbvmm follows QEMU's first line with its own command list.
        let bogus = (ours["bogus"] as? String) ?? ""
        #expect(bogus.hasPrefix(theirs["bogus"] as? String ?? "?"), "\(bogus)")

        // info registers: every field the guest decides. Not compared: rbx, rsi, rdi (the
        // multiboot information's address, which each loader picks), and IDT (QEMU's firmware
        // leaves its real-mode table limit, 0x3ff; gdbvmm boots without firmware).
        let mine = Self.registerFields(ours["info registers"] as? String ?? "")
        let qemus = Self.registerFields(theirs["info registers"] as? String ?? "")
        #expect(!mine.isEmpty && mine.keys.count == qemus.keys.count, "\(mine.keys.sorted()) vs \(qemus.keys.sorted())")
        for key in qemus.keys.sorted() where !["RAX", "RSI", "IDT"].contains(key) {
            #expect(mine[key] == qemus[key], "info registers \(key)")
        }
        for (line, skip) in [("RAX", ["RBX"]), ("RSI", ["RSI", "RDI"])] {
            func fields(_ text: String?) -> [String] {
                (text ?? "").split(separator: " ").filter { f in !skip.contains(where: { f.hasPrefix($0 + "=") }) }.map(String.init)
            }
            #expect(fields(mine[line]) == fields(qemus[line]), "info registers \(line) row")
        }

        // What pwndbg and GEF conclude.
        for key in ["pwndbg.is_qemu", "pwndbg.is_usermode", "gef.is_qemu_system"] {
            #expect(ours[key] as? Bool == theirs[key] as? Bool, "\(key)")
        }
        #expect(ours["pwndbg.is_qemu"] as? Bool == true && ours["pwndbg.is_usermode"] as? Bool == false)
        #expect(ours["gef.is_qemu_system"] as? Bool == true)
        #expect(String(describing: ours["pwndbg.vmmap"] ?? "") == String(describing: theirs["pwndbg.vmmap"] ?? "?"))
        #expect(String(describing: ours["gef.sections"] ?? "") == String(describing: theirs["gef.sections"] ?? "?"))
        #expect(String(describing: ours["pwndbg.GDT"] ?? "") == String(describing: theirs["pwndbg.GDT"] ?? "?"))
        // Thread names: QEMU's text, then the mode.
        #expect((ours["threads"] as? String ?? "").contains("(CPU#0 [running], long mode)"))
        #expect((theirs["threads"] as? String ?? "").contains("(CPU#0 [running])"))
    }

    static let packets = ["qqemu.Supported", "Qqemu.sstepbits", "qqemu.sstepbits", "qqemu.sstep", "Qqemu.sstep=7",
                          "Qqemu.sstep=4", "Qqemu.sstep=1", "qqemu.sstep", "qqemu.sstep=3", "Qqemu.sstep",
                          "Qqemu.sstep=0", "qqemu.sstep", "Qqemu.sstep=3", "qqemu.PhyMemMode", "Qqemu.PhyMemMode:1",
                          "qqemu.PhyMemMode", "Qqemu.PhyMemMode:5", "qqemu.PhyMemMode", "Qqemu.PhyMemMode:0",
                          "qqemu.PhyMemMode", "Qqemu.Supported", "Qqemu.PhyMemMode", "qqemu.PhyMemMode:1", "qOffsets",
                          "qAttached"]

    static func packetReplies(target: String) -> [String] {
        let script = Self.packets.map { "maintenance packet \($0)" }.joined(separator: "\n")
        let r = Harness.gdb("target remote \(target)\n" + script + "\nkill", symbols: Harness.guest("demo-multiboot"))
        return r.stdout.split(separator: "\n").filter { $0.hasPrefix("received: ") }.map(String.init)
    }

    /// gdbvmm runs on KVM, so its peer is QEMU under KVM on this host: QEMU offers NOTIMER only
    /// under TCG (timers there are the emulator's; under KVM they are the host's and run on).
    @Test("QEMU's maintenance packets: the replies QEMU under KVM gives, in the same order")
    func maintenancePacketsMatchQEMU() throws {
        if Self.skipWithoutQEMU() { return }
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "--serial", "none", Harness.guest("demo-multiboot")])
        let ours = Self.packetReplies(target: vmm.gdbTarget)
        _ = vmm.wait()
        #expect(ours.count == Self.packets.count, "\(ours)")
        #expect(ours.first == "received: \"sstepbits;sstep;PhyMemMode\"")
        guard let (qemu, socket) = try? Self.startQEMU(accel: "kvm") else {
            Harness.warn("QEMU under KVM did not start here: maintenance packets compared with TCG's rules only")
            return
        }
        defer { if qemu.isRunning { qemu.terminate() }; qemu.waitUntilExit(); try? FileManager.default.removeItem(atPath: socket) }
        let theirs = Self.packetReplies(target: socket)
        #expect(theirs.count == Self.packets.count, "\(theirs)")
        for (i, packet) in Self.packets.enumerated() where i < min(ours.count, theirs.count) {
            #expect(ours[i] == theirs[i], "maint packet \(packet)")
        }
    }

    @Test("Qqemu.sstep=1 steps with interrupts allowed, =3 holds them off, =0 makes a step a continue; PhyMemMode reads physical memory")
    func stepFlagsAndPhysicalMode() throws {
        let o = try debugSession("demo-elf64", """
            break compute
            continue
            maintenance packet Qqemu.sstep=1
            stepi
            maintenance packet Qqemu.sstep=3
            stepi
            print $pc == compute + 0
            maintenance packet Qqemu.PhyMemMode:1
            x/2xb 0x100000
            maintenance packet Qqemu.PhyMemMode:0
            monitor phys
            maintenance packet Qqemu.sstep=0
            stepi
            """)
        expectInOrder(o.gdb.stdout, ["Breakpoint 1, compute", "received: \"OK\"", "received: \"OK\"", "$1 = 0",
                                     "received: \"OK\"", "0x100000 <_start>:\t0x31\t0xed", "received: \"OK\"",
                                     "received: \"OK\"", "exited with code 041"])
        expectInOrder(o.gdb.stderr, ["guest-virtual addresses"])
        #expect(o.vmmStatus == 33)
    }

    /// The ticks guest takes local-APIC timer interrupts while it loops; between two steps
    /// gdb holds the guest for about a millisecond, longer than the timer's period, so an
    /// interrupt is pending at almost every step.
    @Test("Qqemu.sstep: with NOIRQ (3) steps never enter the timer handler, without it (1) they do")
    func stepsAndInterrupts() throws {
        let o = try debugSession("ticks", #"""
            break tick_loop
            continue
            delete
            python
            import gdb
            def in_handler():
                where = gdb.execute("info symbol $pc", to_string=True)
                return where.startswith("tick_entry") or where.startswith("on_tick")
            print(gdb.execute("maintenance packet qqemu.sstep", to_string=True))
            blocked = 0
            for i in range(40):
                gdb.execute("stepi", to_string=True)
                blocked += in_handler()
            before = int(gdb.parse_and_eval("ticks"))
            gdb.execute("maintenance packet Qqemu.sstep=1")
            entered = None
            for i in range(300):
                gdb.execute("stepi", to_string=True)
                if in_handler():
                    entered = i
                    break
            print("RESULT blocked=%d entered=%s ticks_before=%d" % (blocked, entered is not None, before))
            # KVM leaves the step's TF set in the RFLAGS the CPU pushed (why BLOCKIRQ exists);
            # iretq would then raise a #DB the guest has no handler for. Find the interrupt
            # frame (RIP, CS 0x08, RFLAGS with IF) above the handler's pushes and clear it.
            sp = int(gdb.parse_and_eval("$sp"))
            for k in range(12):
                cs = int(gdb.parse_and_eval("*(unsigned long *)%d" % (sp + 8 * k + 8)))
                flags = int(gdb.parse_and_eval("*(unsigned long *)%d" % (sp + 8 * k + 16)))
                if cs == 8 and flags & 0x200:
                    print("SAVED_TF=%d" % ((flags >> 8) & 1))
                    gdb.execute("set var *(unsigned long *)%d = %d" % (sp + 8 * k + 16, flags & ~0x100))
                    break
            gdb.execute("maintenance packet Qqemu.sstep=3")
            end
            continue
            """#, vmmArguments: ["--cpus", "2", "--serial", "none"])
        expectInOrder(o.gdb.stdout, ["Breakpoint 1, ", "received: \"0x3\"", "RESULT blocked=0 entered=True",
                                     "SAVED_TF=1", "exited with code 041"])
        #expect(o.vmmStatus == 33, "stderr: \(o.vmmStderr)")
    }
}

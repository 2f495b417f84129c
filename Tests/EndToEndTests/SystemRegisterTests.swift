import Foundation
import Testing

/// AVX, MSRs, debug and descriptor-table registers through gdb, with the gdb on PATH and with
/// gdb 18 (scripts/newer-debuggers) where it installs: read, written, read back after the guest
/// ran, and writes the CPU refuses reported by register name.
@Suite("system and AVX registers", .serialized, .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct SystemRegisterTests {
    /// The gdb to use: "gdb" is the harness's (PATH or $GDBVMM_TEST_GDB), "gdb 18" PyPI's.
    static func gdb(_ which: String) -> String? {
        which == "gdb 18" ? Debuggers.gdb18 : Harness.gdbPath
    }

    func session(_ guest: String, _ commands: String, gdb: String) throws -> (Harness.Result, Int32) {
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", Harness.guest(guest)])
        let result = Harness.gdb("target remote \(vmm.gdbTarget)\n" + commands, symbols: Harness.guest(guest), using: gdb)
        return (result, vmm.wait(timeout: 60))
    }

    static let refusals = """
        python
        for command in ["set var $cr3 = 0xfff0000000001000", "set var $dr6 = 0x100000000"]:
            try:
                gdb.execute(command)
                print("accepted: " + command)
            except gdb.error as e:
                print("refused: " + str(e))
        end
        """

    @Test("x86-64: ymm, MSRs, descriptor tables and the guest's own debug registers", arguments: ["gdb", "gdb 18"])
    func longMode(which: String) throws {
        guard let gdb = Self.gdb(which) else { return }
        let (r, status) = try session("demo-elf64", """
            break compute
            continue
            info registers ymm0
            set var $ymm0.v8_int32 = {1, 2, 3, 4, 5, 6, 7, 8}
            set var $ymm15.v4_int64 = {-1, 2, -3, 4}
            stepi
            p $ymm0.v8_int32
            p $ymm15.v4_int64
            p $xmm0.v4_int32
            p $lstar
            set var $lstar = 0xffffffff81000000
            set var $sysenter_cs = 0x10
            p/x $gdtr_base
            p $gdtr_limit
            info registers cr0 efer
            p $dr7
            set var $dr0 = 0x1234
            hbreak add
            continue
            p/x $dr0
            p/x $lstar
            p/x $sysenter_cs
            python print("tsc positive: %s" % (int(gdb.parse_and_eval("$tsc")) > 0))
            \(Self.refusals)
            p/x $cr3
            info registers
            delete
            continue
            """, gdb: gdb)
        let o = r.output
        expectInOrder(o, [
            "Breakpoint 1, compute (n=5)",
            "ymm0", "v8_int32 = {0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0}",
            "= {1, 2, 3, 4, 5, 6, 7, 8}",
            "= {-1, 2, -3, 4}",
            // xmm0 is the low half of ymm0.
            "= {1, 2, 3, 4}",
            "= (void (*)()) 0x0",
            "= 0x500", "= 31",
            "cr0", "[ PE MP ET NE WP AM PG ]", "efer", "[ LME LMA ]",
            "= 1024",
            "Breakpoint 2, add",
            // The guest's dr0, not the debug register gdbvmm's hbreak uses.
            "= 0x1234",
            "= 0xffffffff81000000",
            "= 0x10",
            "tsc positive: True",
            // gdb 13 shows the reply as it came (E.cr3: ...), gdb 18 without the E.
            "refused: Could not write register \"cr3\"; remote failure reply '", "cr3: the CPU refused 0xfff0000000001000",
            "refused: Could not write register \"dr6\"; remote failure reply '", "dr6: the CPU refused 0x100000000",
            "= 0x1000",
            "rip", "gs_base", "gdtr_base", "tr_limit", "k_gs_base", "lstar", "0xffffffff81000000", "apic_base", "dr7",
        ])
        #expect(!o.contains("accepted:"))
        #expect(status == 33, "gdb output:\n\(o)")
    }

    @Test("i386 view of a 32-bit guest: ymm0-7, descriptor tables and MSRs", arguments: ["gdb", "gdb 18"])
    func protectedMode(which: String) throws {
        guard let gdb = Self.gdb(which) else { return }
        let (r, status) = try session("demo-multiboot32", """
            break compute
            continue
            set var $ymm7.v8_int32 = {8, 7, 6, 5, 4, 3, 2, 1}
            stepi
            p $ymm7.v8_int32
            p $ymm7.v8_int32[0] + $ymm7.v8_int32[7]
            p/x $gdtr_base == &gdt32
            set var $sysenter_esp = 0x9000
            p/x $sysenter_esp
            p $lstar
            info registers eip
            delete
            continue
            """, gdb: gdb)
        let o = r.output
        expectInOrder(o, ["Breakpoint 1, compute (n=5)", "= {8, 7, 6, 5, 4, 3, 2, 1}", "= 9", "= 0x1", "= 0x9000",
                          // No lstar in the i386 view: a convenience variable.
                          "= void", "eip"])
        #expect(status == 33, "gdb output:\n\(o)")
    }
}

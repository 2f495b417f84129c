import Testing

/// The x87 and SSE registers through gdb: FXSAVE keeps one "not empty" bit per physical
/// register, gdb shows the full tag word derived from each register's contents (valid 0, zero 1,
/// special 2, empty 3) relative to TOP; and a register written through gdb must survive the
/// guest running (XSTATE_BV must mark x87 and SSE present, or KVM restores their init state).
/// Every read follows a `stepi`, so gdbvmm reads the state back from KVM, not from its cache.
@Suite("x87 and SSE registers", .serialized, .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct X87RegisterTests {
    @Test("st0-7, ftag and xmm written through gdb read back after the guest runs")
    func tagWordAndXStateThroughGDB() throws {
        // Held at _start, before the guest has touched x87 or SSE state: the writes are what
        // makes them present. _start's first instructions are integer-only.
        let o = try debugSession("demo-elf64", """
            print/x $ftag
            set var $st0 = 1.5
            set var $xmm1.v4_int32 = {1, 2, 3, 4}
            stepi
            print $st0
            print $xmm1.v4_int32
            print/x $ftag
            set var $ftag = 0xfffc
            stepi
            print/x $ftag
            set var $st1 = 0
            set var $st2 = 1.0/0
            set var $ftag = 0xffc0
            stepi
            print/x $ftag
            set var $fstat = 0x3800
            stepi
            print/x $ftag
            print $st0
            print $st2
            set var $fstat = 0
            set var $ftag = 0xffff
            continue
            """)
        expectInOrder(o.gdb.stdout, [
            "$1 = 0xffff",  // every register empty at power-on
            "$2 = 1.5", "$3 = {1, 2, 3, 4}",  // survived KVM_SET_XSAVE and a run
            "$4 = 0xffff",  // contents alone do not make a register valid
            "$5 = 0xfffc",  // physical 0 (st0 = 1.5) valid
            // Physical 0..2 tagged non-empty: 1.5 valid, 0 zero, inf special.
            "$6 = 0xffe4",
            // TOP = 7: st(i) is physical (i + 7) & 7, so physical 0 is st1 (zero), 1 is st2
            // (special), 2 is st3 (zero); physical 7 (st0) has no tag bit: empty.
            "$7 = 0xffd9",
            "$8 = 1.5", "$9 = inf",
            "exited with code 041",
        ])
        #expect(o.vmmStatus == 33)
    }
}

import Foundation
import Testing

/// Watchpoints by page trapping: on a page shared with the running code and other variables,
/// more than four at once, each kind.
@Suite("watchpoints", .serialized, .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct WatchpointTests {
    @Test("five write watchpoints at once, on the page the code runs from")
    func manyWriteWatchpoints() throws {
        let o = try debugSession("watch", """
            watch watched_a
            watch watched_b
            watch watched_c
            watch watched_d
            watch watched_e
            continue
            continue
            continue
            delete
            continue
            """)
        expectInOrder(o.gdb.output, [
            "watchpoint 1: watched_a", "watchpoint 5: watched_e",
            "watchpoint 1: watched_a", "Old value = 0", "New value = 1", "watch.c:23",
            "watchpoint 3: watched_c", "Old value = 0", "New value = 3", "watch.c:25",
            "watchpoint 5: watched_e", "Old value = 0", "New value = 5", "watch.c:27",
            "exited with code 041",
        ])
        #expect(o.vmmStatus == 33)
    }

    @Test("rwatch and awatch report reads (and writes) of variables next to the code")
    func readAndAccessWatchpoints() throws {
        let o = try debugSession("watch", """
            rwatch watched_b
            awatch watched_c
            rwatch watched_d
            continue
            print $pc
            continue
            continue
            continue
            delete
            continue
            """)
        expectInOrder(o.gdb.output, [
            "Hardware read watchpoint 1: watched_b", "Hardware access (read/write) watchpoint 2: watched_c",
            "Hardware read watchpoint 3: watched_d",
            "Hardware read watchpoint 1: watched_b", "Value = 2",
            "Hardware access (read/write) watchpoint 2: watched_c", "New value = 3",
            "Hardware read watchpoint 3: watched_d", "Value = 4",
            "Hardware read watchpoint 1: watched_b", "Value = 2",
            "exited with code 041",
        ])
        #expect(o.vmmStatus == 33)
    }

    @Test("a watchpoint on a stack variable in a page of its own, then removed")
    func watchDataPage() throws {
        let o = try debugSession("demo-elf64", """
            watch counter
            set var spin_forever = 1
            break spin
            continue
            delete 2
            continue
            print counter
            delete
            set var spin_forever = 0
            continue
            """)
        expectInOrder(o.gdb.output, ["watchpoint 1: counter", "Breakpoint 2, spin", "watchpoint 1: counter",
                                     "Old value = 0", "New value = 1", "$1 = 1", "exited with code 041"])
        #expect(o.vmmStatus == 33)
    }

    @Test("watchpoints on page-table pages: the guest's translation keeps working (checked by stepping)")
    func watchOnPageTables() throws {
        // 0x1000 is the PML4 and 0x2000 the PDPT of the ELF64-direct boot; nothing in the guest
        // touches these entries, so the guest must simply run to its end.
        let o = try debugSession("demo-elf64", """
            watch *(long *)0x1ff8
            rwatch *(long *)0x2ff8
            awatch *(long *)0x1ff0
            continue
            """)
        expectInOrder(o.gdb.output, ["watchpoint 1", "watchpoint 2", "watchpoint 3", "exited with code 041"])
        #expect(o.vmmStatus == 33, "stderr: \(o.vmmStderr)")
    }

    @Test("a watchpoint on page tables the guest is building, before and after it turns paging on")
    func watchGuestPageTables() throws {
        let o = try debugSession("demo-multiboot", """
            watch *(long *)&boot_pml4
            continue
            print/x *(long *)&boot_pml4 & 0xfff
            continue
            """)
        expectInOrder(o.gdb.output, ["Hardware watchpoint 1", "Old value = 0", "New value = ", "$1 = 0x3",
                                     "exited with code 041"])
        #expect(o.vmmStatus == 33)
    }

    @Test("hits on a page-table page: writes and reads by instructions are caught while stepping")
    func hitsOnPageTablePage() throws {
        // Patch two instructions at compute's breakpoint: mov %rax,0x1ff8 ; mov 0x1ff8,%rbx.
        // 0x1ff8 is the last PML4 entry of the ELF64-direct boot: a page the CPU walks.
        let o = try debugSession("demo-elf64", """
            break compute
            continue
            delete
            set var $rax = 0x1234
            set {unsigned char[16]}$pc = {0x48,0x89,0x04,0x25,0xf8,0x1f,0x00,0x00,0x48,0x8b,0x1c,0x25,0xf8,0x1f,0x00,0x00}
            watch *(long *)0x1ff8
            continue
            print $pc
            delete
            rwatch *(long *)0x1ff8
            continue
            print $pc
            print $rbx
            kill
            """)
        expectInOrder(o.gdb.output, ["Breakpoint 1, compute", "Hardware watchpoint 2", "Old value = 0",
                                     "New value = 4660", "$1 = (void (*)()) 0x100128 <compute+19>",
                                     "Hardware read watchpoint 3", "Value = 4660",
                                     "$2 = (void (*)()) 0x100130 <compute+27>", "$3 = 4660", "killed"])
        #expect(o.vmmStatus == 0)
    }
}

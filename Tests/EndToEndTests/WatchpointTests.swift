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
}

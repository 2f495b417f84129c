import Foundation
import Glibc
import Testing

/// The vCPU run loop under gdb: steps that exit to user space, stops that happen at the same
/// time on several vCPUs, fairness between vCPUs, and kicks that must not be lost.
@Suite("run loop", .serialized, .enabled(if: Harness.hasKVM && Harness.hasGDB, "needs /dev/kvm and gdb"))
struct RunLoopTests {
    /// stepi from at_X must land on after_X: one instruction, even where the host's single-step
    /// would run two (port output on nested KVM), and the output bytes appear exactly once.
    @Test("the UART's receive interrupt reaches a guest through the IOAPIC: a line typed on stdin arrives by IRQ 4 alone")
    func serialReceiveInterrupt() {
        let r = Harness.run([Harness.binary, "--cpus", "2", Harness.guest("serialirq")], stdin: "hello\n", timeout: 60)
        #expect(r.stdout.contains("serialirq guest: you typed: hello\nserialirq guest: interrupts: "), "stdout: \(r.stdout)")
        #expect(!r.stdout.contains("interrupts: 0\n"))
        #expect(r.status == 11, "stderr: \(r.stderr)")
    }

    @Test("stepi over out, in, outs, ins, an MMIO store and load, and hlt lands on the next instruction")
    func stepOverExits() throws {
        let points = ["out", "in", "outs", "ins", "mmio_store", "mmio_load", "hlt"]
        var script = """
            set var do_hlt = 1
            break *at_out
            continue
            delete
            python
            import gdb
            def check(name):
                start = int(gdb.parse_and_eval("$pc"))
                at = int(gdb.parse_and_eval("(unsigned long)&at_" + name))
                if start != at:
                    gdb.execute("stepi")
                gdb.execute("stepi")
                pc = int(gdb.parse_and_eval("$pc"))
                after = int(gdb.parse_and_eval("(unsigned long)&after_" + name))
                print("STEP %s %s" % (name, "ok" if pc == after else "landed at 0x%x, wanted 0x%x" % (pc, after)))
                # on to the next at_ label: the nop after, and any setup instructions
            end

            """
        for (i, name) in points.enumerated() {
            script += "python check(\"\(name)\")\n"
            if i + 1 < points.count {
                script += "tbreak *at_\(points[i + 1])\ncontinue\n"
            }
        }
        // After the HLT the vCPU is halted with interrupts off: the guest has ended (status 0).
        script += "continue\n"
        let o = try debugSession("portio", script)
        expectInOrder(o.gdb.output, points.map { "STEP \($0) ok" } + ["exited normally"])
        #expect(o.vmmStatus == 0, "stderr: \(o.vmmStderr)")
        // 'A' from out, 'B' from outs: once each, however the steps went.
        #expect(o.vmmStdout == "portio: AB", "stdout: \(o.vmmStdout)")
    }

    /// Four vCPUs hit one breakpoint at the same rate: over 200 continues every vCPU is
    /// reported, and no vCPU's share is more than twice another's.
    @Test("4 vCPUs, one common breakpoint, 200 continues: every vCPU's share within 2x")
    func fairShares() throws {
        let o = try debugSession("smp", """
            break cpu_work
            python
            import gdb
            counts = [0, 0, 0, 0]
            for i in range(200):
                gdb.execute("continue", to_string=True)
                counts[int(gdb.parse_and_eval("cpu"))] += 1
            print("SHARES " + " ".join(str(c) for c in counts))
            end
            delete
            set var stop_all = 1
            continue
            """, vmmArguments: ["--cpus", "4"], waitForExit: 120)
        let line = o.gdb.output.split(separator: "\n").first { $0.hasPrefix("SHARES ") }
        let shares = line.map { $0.dropFirst(7).split(separator: " ").compactMap { Int($0) } } ?? []
        #expect(shares.count == 4, "gdb output: \(o.gdb.output)")
        print("run loop: hit shares per vCPU over 200 continues: \(shares)")
        if shares.count == 4 {
            #expect(shares.reduce(0, +) == 200)
            #expect(shares.min()! > 0 && shares.max()! <= 2 * shares.min()!, "hit shares per vCPU: \(shares)")
        }
        #expect(o.vmmStatus == 9, "stderr: \(o.vmmStderr)")
    }

    /// vCPU 1 increments ticks[1] under a write watch while all four vCPUs hit a breakpoint on
    /// the function each calls: the watch reports must show ticks[1] going up by exactly one
    /// each time (a lost stop would show as a gap).
    @Test("4 vCPUs: a write watch on one vCPU's counter loses no hit while all hit a breakpoint",
          arguments: 1...5)
    func noLostWatchHits(run: Int) throws {
        let o = try debugSession("smp", """
            break cpu_work
            watch ticks[1]
            python
            import gdb
            values = []
            stops = 0
            def on_stop(event):
                global stops
                stops += 1
                if isinstance(event, gdb.BreakpointEvent) and any(b.number == 2 for b in event.breakpoints):
                    values.append(int(gdb.parse_and_eval("ticks[1]")))
            gdb.events.stop.connect(on_stop)
            while len(values) < 26 and stops < 2000:
                gdb.execute("continue", to_string=True)
            gdb.events.stop.disconnect(on_stop)
            gaps = [b - a for a, b in zip(values, values[1:]) if b - a != 1]
            print("WATCH %d reports, %d gaps, values %s" % (len(values), len(gaps), values))
            end
            delete
            set var stop_all = 1
            continue
            """, vmmArguments: ["--cpus", "4"], waitForExit: 120)
        expectInOrder(o.gdb.output, ["WATCH 26 reports, 0 gaps", "exited with code 011"])
        #expect(o.vmmStatus == 9, "stderr: \(o.vmmStderr)")
    }

    /// The guest writes its console to a pipe that nobody reads: the vCPU must stay kickable
    /// (Ctrl-C stops it), and gdbvmm ends promptly when told to.
    @Test("Ctrl-C while the serial console is a full pipe nobody reads")
    func interruptWithFullConsolePipe() throws {
        let fifo = FileManager.default.temporaryDirectory.appendingPathComponent("gdbvmm-full-\(UUID().uuidString.prefix(8))").path
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        // The pipe's reader is a process of its own: it reads the guest's first line (so the
        // guest has printed and gdbvmm's writer is at work), then fills the pipe until the
        // kernel refuses more, leaves a marker file, and never reads again.
        let marker = fifo + ".full"
        defer { unlink(marker) }
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = ["python3", "-c", """
            import os, time
            fd = os.open("\(fifo)", os.O_RDWR)
            line = b""
            while not line.endswith(b"\\n"):
                line += os.read(fd, 1)
            os.set_blocking(fd, False)
            while True:
                try:
                    os.write(fd, b"\\0" * 512)
                except BlockingIOError:
                    break
            open("\(marker)", "w").close()
            time.sleep(300)
            """]
        try holder.run()
        // SIGKILL: a process started from a test thread may inherit a mask that blocks SIGTERM.
        defer { kill(holder.processIdentifier, SIGKILL); holder.waitUntilExit() }
        let vmm = try RunningVMM(["--gdb", "tcp:0", "-S", "--serial", "file:" + fifo, Harness.guest("chatter")])
        let gdb = Harness.gdb("""
            target remote \(vmm.gdbTarget)
            python
            import threading, time, os
            def interrupt_when_full():
                for i in range(12000):
                    if os.path.exists("\(marker)"):
                        break
                    time.sleep(0.01)
                def press():
                    gdb.set_convenience_variable("pipe_full", 1 if os.path.exists("\(marker)") else 0)
                    gdb.execute("interrupt")
                gdb.post_event(press)
            threading.Thread(target=interrupt_when_full, daemon=True).start()
            end
            continue
            print $pipe_full
            print lines > 0
            monitor info exits
            kill
            """, symbols: Harness.guest("chatter"), timeout: 150)
        let status = vmm.wait(timeout: 20)
        expectInOrder(gdb.output, ["received signal SIGINT", "$1 = 1", "$2 = 1", "serial output dropped"])
        #expect(status == 0, "stderr: \(vmm.stderrText)")
    }
}

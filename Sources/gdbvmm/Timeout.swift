import Foundation
import KVMRunLoop
import RSP

/// `--timeout`: a guest that runs too long is ended, with its own exit status and the state
/// it was in, so a CI job sees where it hung.
extension Controller {
    /// The exit status of a VM ended by `--timeout` (the one `timeout(1)` uses).
    static let timeoutStatus: Int32 = 124
    /// gdb's SIGALRM: what an attached gdb is told the guest was ended by.
    static let alarmSignal: UInt8 = 14

    /// Milliseconds until the deadline (0 once it has passed), for the event loop's poll.
    var timeoutMilliseconds: Int32? {
        guard let deadline = timeoutDeadline else { return nil }
        let now = monotonicNow()
        return deadline > now ? Int32(min((deadline - now) / 1_000_000 + 1, 60_000)) : 0
    }

    /// Ends the VM if the deadline has passed: every vCPU parks, its registers go to stderr, an
    /// attached gdb waiting for a stop hears that the guest was killed by SIGALRM.
    func checkTimeout() {
        guard let deadline = timeoutDeadline, monotonicNow() >= deadline, finalStatus == nil else { return }
        machine.pauseAll()
        _ = machine.stops.drain()
        var text = "gdbvmm: the guest ran past --timeout \(options.timeout.map { String($0) } ?? "?") s: ended (exit status \(Controller.timeoutStatus))\n"
        for vcpu in 0..<machine.vcpuCount {
            text += "vCPU \(vcpu) (\(threadExtraInfo(vcpu + 1))):\n"
            if let state = try? machine.withVCPU(vcpu, { (v) throws(SystemError) in try CPUState(vcpu: v) }) {
                text += registerDump(state)
            } else {
                text += "  (its registers could not be read)\n"
            }
        }
        FileHandle.standardError.write(Data(text.utf8))
        if session?.isRunning == true { deliver(.terminated(signal: Controller.alarmSignal)) }
        finalStatus = Controller.timeoutStatus
    }
}

import Foundation
import CKVM
import Glibc

/// Stops posted by vCPU threads for the controller: a locked list plus an eventfd, so the
/// controller can wait on it together with the gdb socket in one poll(2).
public final class StopQueue: @unchecked Sendable {
    // SAFETY (Sendable): `pending` is only touched under `lock`; the eventfd is immutable.
    public let eventFD: Int32
    private let lock = NSLock()
    private var pending: [(vcpu: Int, stop: VCPUStop)] = []

    init() throws(SystemError) {
        eventFD = try sys("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }
    }

    deinit { close(eventFD) }

    func post(vcpu: Int, stop: VCPUStop) {
        enqueue(vcpu: vcpu, stop: stop)
        wake()
    }

    /// Queues a stop without waking the controller (`wake` does): a vCPU thread queues under
    /// its own lock and wakes after releasing it, so the controller does not wake only to wait
    /// for that lock.
    func enqueue(vcpu: Int, stop: VCPUStop) {
        lock.lock()
        pending.append((vcpu, stop))
        lock.unlock()
    }

    func wake() {
        var one: UInt64 = 1
        _ = write(eventFD, &one, 8)
    }

    /// Takes the stop one vCPU posted (the others stay queued): for a run the controller
    /// waits on itself, such as the watchpoint fallback's step.
    func take(vcpu: Int) -> VCPUStop? {
        lock.lock()
        defer { lock.unlock() }
        guard let i = pending.firstIndex(where: { $0.vcpu == vcpu }) else { return nil }
        return pending.remove(at: i).stop
    }

    /// Takes every posted stop, oldest first, and resets the eventfd.
    public func drain() -> [(vcpu: Int, stop: VCPUStop)] {
        var counter: UInt64 = 0
        _ = read(eventFD, &counter, 8)
        return takeAll()
    }

    /// Takes every posted stop, leaving the eventfd as it is: for a second look soon after a
    /// `drain` (the stops posted while the others parked), where a read of the eventfd would
    /// nearly always be one more syscall that finds nothing. A wake-up left behind only makes
    /// the next `drain` find an empty queue.
    public func takeAll() -> [(vcpu: Int, stop: VCPUStop)] {
        lock.lock()
        defer { lock.unlock() }
        let taken = pending
        pending.removeAll()
        return taken
    }
}

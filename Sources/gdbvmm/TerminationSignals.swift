import Foundation
import Glibc

/// SIGINT, SIGTERM and SIGHUP end gdbvmm through its normal exit path (so that a Unix socket
/// file is removed), with the conventional status 128 + the signal number.
///
/// No signal handler runs: `start()` blocks the signals before any other thread exists (every
/// thread inherits the mask, so the vCPU threads never take them), and one thread waits for them
/// with sigwait(2) and writes the number to a pipe the event loop polls. A signal the parent had
/// ignored (SIGINT for a background job `gdbvmm ... &`) stays ignored.
enum TerminationSignals {
    /// Readable once a signal has arrived; each byte is a signal number (-1: signals keep
    /// their default action, the pipe could not be made).
    static let fd: Int32 = takeOver()

    /// Call first thing in main, while this is the only thread.
    static func start() { _ = fd }

    private static func takeOver() -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        for number in [SIGINT, SIGTERM, SIGHUP] {
            var current = sigaction()
            // SAFETY: unsafeBitCast compares the handler's address with SIG_IGN's (1); both are
            // plain function pointers of the same size, and neither is called.
            if sigaction(number, nil, &current) == 0, let handler = current.__sigaction_handler.sa_handler,
               unsafeBitCast(handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) { continue }
            sigaddset(&set, number)
        }
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { return -1 }
        for end in ends {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
        }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let writeEnd = ends[1]
        let waited = set
        let thread = Thread {
            var set = waited
            var number: Int32 = 0
            while true {
                guard sigwait(&set, &number) == 0 else { continue }
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(writeEnd, &byte, 1)
            }
        }
        thread.name = "gdbvmm signals"
        thread.stackSize = 64 << 10
        thread.start()
        return ends[0]
    }

    /// The signal that arrived, if one has.
    static func received() -> Int32? {
        var byte: UInt8 = 0
        return read(fd, &byte, 1) == 1 ? Int32(byte) : nil
    }
}

import Glibc
import Testing
@testable import KVMRunLoop

/// `sys` and `sysRetrying`, the funnel every raw call goes through, fed closures that fail the
/// way a system call does: return -1 with errno set.
@Suite struct SystemCallFunnelTests {
    /// A fake system call that fails with each errno in `failures`, then returns `result`.
    final class FakeCall {
        var failures: [Int32]
        let result: Int32
        private(set) var calls = 0

        init(failing failures: [Int32], then result: Int32 = 7) {
            self.failures = failures
            self.result = result
        }

        func callAsFunction() -> Int32 {
            calls += 1
            guard !failures.isEmpty else { return result }
            Glibc.errno = failures.removeFirst()
            return -1
        }
    }

    @Test func sysReturnsTheResultAndNamesNothingOnSuccess() throws {
        let call = FakeCall(failing: [])
        var named = 0
        let before = SystemCalls.count
        let result = try sys({ named += 1; return "reading" }()) { call() }
        #expect(result == 7)
        #expect(call.calls == 1)
        #expect(named == 0, "the operation's name is only built for an error")
        #expect(SystemCalls.count > before, "every call through the funnel is counted")
    }

    @Test func sysCarriesErrnoAndTheOperation() {
        let call = FakeCall(failing: [EBADF])
        #expect(throws: SystemError.self) { try sys("KVM_GET_REGS") { call() } }
        do {
            try sys("KVM_GET_REGS") { call() }
        } catch {
            #expect(error.operation == "KVM_GET_REGS")
            #expect(error.errno == EBADF)
            #expect(error.description == "KVM_GET_REGS failed: Bad file descriptor (errno 9)")
        }
    }

    @Test func sysDoesNotRetryEINTR() {
        // KVM_RUN's kick is an EINTR: the caller must see it.
        let call = FakeCall(failing: [EINTR])
        do {
            try sys("KVM_RUN") { call() }
            Issue.record("EINTR was swallowed")
        } catch {
            #expect(error.errno == EINTR)
            #expect(error.description.hasPrefix("KVM_RUN failed: Interrupted system call"))
        }
        #expect(call.calls == 1)
    }

    @Test func sysRetryingRetriesEINTROnly() throws {
        let interrupted = FakeCall(failing: [EINTR, EINTR, EINTR], then: 42)
        #expect(try sysRetrying("poll") { interrupted() } == 42)
        #expect(interrupted.calls == 4)

        let failing = FakeCall(failing: [EINTR, EAGAIN, EINTR])
        do {
            try sysRetrying("write") { failing() }
            Issue.record("EAGAIN was retried")
        } catch {
            #expect(error.operation == "write")
            #expect(error.errno == EAGAIN)
            #expect(error.description == "write failed: Resource temporarily unavailable (errno 11)")
        }
        #expect(failing.calls == 2, "the EINTR is retried, the EAGAIN ends it")
    }

    @Test func onlyMinusOneIsAFailure() throws {
        // ioctls return other negative numbers never, but 0 and positive results must pass.
        Glibc.errno = EIO
        #expect(try sys("zero") { 0 } == 0)
        #expect(try sysRetrying("zero") { 0 } == 0)
        #expect(try sys("large") { Int32.max } == Int32.max)
    }
}

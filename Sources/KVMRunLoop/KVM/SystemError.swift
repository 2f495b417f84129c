import Glibc
import Synchronization

/// The one error type for failed system calls: what was attempted and the errno it failed with.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    public let operation: String
    public let errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// The syscall funnel: runs `body`, and turns a -1 return into a `SystemError` carrying errno.
/// EINTR is not retried here: callers that can be kicked (KVM_RUN) must see it.
@discardableResult
@inline(__always)
func sys(_ operation: @autoclosure () -> String, _ body: () -> Int32) throws(SystemError) -> Int32 {
    systemCallCount.add(1, ordering: .relaxed)
    let result = body()
    if result == -1 { throw SystemError(operation(), errno: Glibc.errno) }
    return result
}

/// System calls made through the funnel (and KVM_RUNs), for `monitor info exits` and for
/// measuring what a debugging operation costs.
let systemCallCount = Atomic<UInt64>(0)

public enum SystemCalls {
    public static var count: UInt64 { systemCallCount.load(ordering: .relaxed) }
}

/// Like `sys`, retrying EINTR: for calls whose interruption means nothing to us.
@discardableResult
func sysRetrying(_ operation: @autoclosure () -> String, _ body: () -> Int32) throws(SystemError) -> Int32 {
    while true {
        let result = body()
        if result != -1 { return result }
        if Glibc.errno != EINTR { throw SystemError(operation(), errno: Glibc.errno) }
    }
}

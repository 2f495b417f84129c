/// Why a guest image could not be loaded. The message names the problem and, where there is
/// one, the fix; it is meant to be printed to the user as is.
public struct LoadError: Error, Equatable, CustomStringConvertible {
    /// The complete, user-facing explanation.
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// `0x1f` style hexadecimal, the way addresses appear in `readelf` and in linker scripts.
func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }

/// A byte count as a person would say it: "128 MiB", "2 GiB", "640 KiB", "37 bytes".
func byteCount(_ bytes: UInt64) -> String {
    let units: [(UInt64, String)] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
    for (unit, name) in units where bytes >= unit && bytes % unit == 0 {
        return "\(bytes / unit) \(name)"
    }
    for (unit, name) in units where bytes >= unit {
        return "\(bytes / unit).\((bytes % unit) * 10 / unit) \(name)"
    }
    return "\(bytes) bytes"
}

/// A guest-physical range written `0x100000+0x5000` (start+length), as in the error messages.
func describe(start: UInt64, length: UInt64) -> String { "\(hex(start))+\(hex(length))" }

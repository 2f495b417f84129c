/// How an instruction uses a memory operand.
enum Use {
    case read, write, readWrite

    var isRead: Bool { self != .write }
    var isWrite: Bool { self != .read }
}

/// A memory operand's use and width in bytes.
struct OperandSpec {
    var use: Use
    var size: Int

    static func r(_ size: Int) -> OperandSpec { OperandSpec(use: .read, size: size) }
    static func w(_ size: Int) -> OperandSpec { OperandSpec(use: .write, size: size) }
    static func rw(_ size: Int) -> OperandSpec { OperandSpec(use: .readWrite, size: size) }
}

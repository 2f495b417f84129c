/// Why decoding stopped; `InstructionDecoder.decode` turns either into nil.
enum DecodeFailure: Error {
    /// The bytes end (or pass the 15-byte limit) before the instruction does.
    case truncated
    /// Not an instruction this decoder can classify.
    case unsupported
}

import Testing
@testable import KVMRunLoop

@Test func placeholder() {
    #expect(InstructionDecoder.decode([0x90], mode: .long64, registers: DecodeRegisters())?.length == 1)
}

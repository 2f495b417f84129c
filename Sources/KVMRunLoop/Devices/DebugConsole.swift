/// The Bochs/QEMU debug console (conventionally port 0xE9): each write prints its low byte;
/// a read returns 0xE9, which is how guests detect the port.
public final class DebugConsole: PortDevice {
    private let sink: any ByteSink

    public init(sink: any ByteSink) { self.sink = sink }

    public func read(port: UInt16, size: Int) -> UInt32 { 0xE9 }

    public func write(port: UInt16, size: Int, value: UInt32) -> DeviceEffect {
        sink.write([UInt8(truncatingIfNeeded: value)])
        return .none
    }
}

import Foundation
import Glibc
import KVMRunLoop

/// Discards the guest's console output (`--serial none`).
final class DiscardSink: ByteSink {
    func write(_ bytes: [UInt8]) {}
}

func fail(_ message: String, status: Int32 = 2) -> Int32 {
    FileHandle.standardError.write(Data("gdbvmm: \(message)\n".utf8))
    return status
}

/// Builds the machine from the options and runs it to its end, then exits with the guest's
/// status; returns only the status of a failure to start.
func runVMM(_ options: Options) -> Int32 {
    let image: [UInt8]
    var initrd: [UInt8]?
    do {
        image = try ImageFile.read(options.guest, what: "guest image", limit: options.memory)
        if let path = options.initrd { initrd = try ImageFile.read(path, what: "initrd", limit: options.memory) }
    } catch {
        return fail("\(error)")
    }
    let console: BufferedSink?
    switch options.serial {
    case .stdio:
        // With --gdb stdio, stdout carries the protocol: the console goes to stderr.
        console = BufferedSink(FileDescriptorSink(fileDescriptor: options.gdb == .stdio ? 2 : 1))
    case .none:
        console = nil
    case .file(let path):
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { return fail("cannot open serial output file \(path): \(String(cString: strerror(errno)))") }
        console = BufferedSink(FileDescriptorSink(fileDescriptor: fd))
    }
    // The vCPUs write into the buffer, never into the file itself (see BufferedSink).
    let serial: any ByteSink = console ?? DiscardSink()
    let machine: Machine
    do {
        // GDBVMM_KVM_DEVICE names another KVM device node (a container's, or a test's).
        let kvmPath = ProcessInfo.processInfo.environment["GDBVMM_KVM_DEVICE"] ?? "/dev/kvm"
        machine = try Machine(MachineConfiguration(
            image: image, memorySize: options.memory, cpuCount: options.cpus,
            commandLine: options.commandLine, initrd: initrd, serial: serial, kvmPath: kvmPath))
    } catch {
        return fail("\(error)")
    }
    do {
        let controller = try Controller(machine: machine, options: options, console: console)
        let status = controller.run()
        // Park and join every vCPU thread, then let what the guest printed reach its reader
        // (unless the reader stopped reading: a second without progress ends the wait).
        machine.shutdown()
        console?.flush(timeout: 1)
        return status
    } catch {
        return fail("\(error)")
    }
}

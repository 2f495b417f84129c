import Foundation
import Testing
@testable import KVMRunLoop

/// Images produced by the system toolchain rather than by ELFBuilder, so the parser meets what
/// real linkers emit (a headers-only segment, GNU_STACK, alignment padding). Skipped, saying
/// so, where gcc/as/ld are missing.
@Suite(.enabled(if: Toolchain.available, "needs gcc, as and ld on PATH"))
struct ToolchainBuiltGuestTests {
    @Test func gccStaticELF64BootsDirect() throws {
        let source = """
            static volatile int counter = 5;
            void _start(void) {
                for (;;) { counter++; __asm__ volatile("outb %%al, %%dx" :: "a"(counter), "d"(0xf4)); }
            }
            """
        let image = try Toolchain.build(files: ["k.c": source], commands: [
            ["gcc", "-O1", "-nostdlib", "-static", "-ffreestanding", "-fno-pic", "-no-pie",
             "-Wl,-Ttext=0x100000", "-o", "k.elf", "k.c"],
        ], output: "k.elf")
        let elf = try ELFImage(parsing: image)
        let memory = FakeMemory(size: 16 * MiB)
        let guest = try loadGuest(image: image, into: memory, commandLine: "", cpuCount: 2)
        #expect(guest.bootProtocol == .elf64Direct)
        #expect(guest.entry.count == 2)
        #expect(guest.entry[0].rip == elf.entry)
        for segment in elf.loadSegments {
            let start = Int(segment.fileOffset)
            #expect(try memory.read(at: segment.physicalAddress, count: Int(segment.fileSize))
                == Array(image[start..<start + Int(segment.fileSize)]))
        }
    }

    @Test func assembledELF32MultibootKernel() throws {
        let assembly = """
            .section .multiboot, "a"
            .align 4
            .long 0x1BADB002
            .long 0x3
            .long -(0x1BADB002 + 0x3)
            .text
            .globl _start
            _start:
                hlt
            .bss
            .space 0x3000
            """
        let script = "ENTRY(_start)\nSECTIONS { . = 0x100000; .text : { *(.multiboot) *(.text) } .bss : { *(.bss) } }\n"
        let image = try Toolchain.build(files: ["mb.S": assembly, "mb.ld": script], commands: [
            ["as", "--32", "-o", "mb.o", "mb.S"],
            ["ld", "-m", "elf_i386", "-T", "mb.ld", "-o", "mb.elf", "mb.o"],
        ], output: "mb.elf")
        let memory = FakeMemory(size: 4 * MiB)
        let guest = try loadGuest(image: image, into: memory, commandLine: "test", cpuCount: 1)
        #expect(guest.bootProtocol == .multiboot)
        #expect(guest.entry[0].rip == 0x10000C)
        #expect(guest.loadedRanges.count == 1 && guest.loadedRanges[0].lowerBound == 0x100000)
        #expect(guest.loadedRanges[0].count > 0x3000)  // text plus the zeroed .bss
        #expect(try memory.readU32(at: 0x100000) == 0x1BAD_B002)
    }
}

enum Toolchain {
    static let available = ["gcc", "as", "ld"].allSatisfy { find($0) != nil }

    static func find(_ tool: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(tool)" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Writes `files` to a fresh directory, runs `commands` there and returns `output`'s bytes.
    static func build(files: [String: String], commands: [[String]], output: String) throws -> [UInt8] {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("gdbvmm-loader-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (name, contents) in files {
            try contents.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        for command in commands {
            guard let tool = find(command[0]) else { throw Failure(description: "\(command[0]) not found") }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = Array(command.dropFirst())
            process.currentDirectoryURL = directory
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let message = errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw Failure(description: "\(command.joined(separator: " ")) failed: "
                    + String(decoding: message, as: UTF8.self))
            }
        }
        return Array(try Data(contentsOf: directory.appendingPathComponent(output)))
    }
}

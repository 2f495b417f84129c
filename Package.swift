// swift-tools-version:6.0
import PackageDescription

// gdbvmm: a micro-VMM on Linux/KVM whose purpose is debugging guests with stock gdb.
// Dependencies point one way: gdbvmm -> RSP, gdbvmm -> KVMRunLoop -> CKVM.
let package = Package(
    name: "gdbvmm",
    products: [
        .executable(name: "gdbvmm", targets: ["gdbvmm"]),
    ],
    targets: [
        .target(name: "CKVM"),
        .target(name: "KVMRunLoop", dependencies: ["CKVM"]),
        .target(name: "RSP"),
        .executableTarget(name: "gdbvmm", dependencies: ["RSP", "KVMRunLoop", "CKVM"]),
        .testTarget(name: "RSPTests", dependencies: ["RSP"]),
        .testTarget(name: "KVMRunLoopTests", dependencies: ["KVMRunLoop"]),
        // Drives the built gdbvmm binary with the real gdb; depends on the executable so
        // `swift test` builds it first.
        .testTarget(name: "EndToEndTests", dependencies: ["gdbvmm"]),
    ],
    swiftLanguageModes: [.v6]
)

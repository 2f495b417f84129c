import Foundation

/// Debian's cloud kernel for the Linux end-to-end tests, as `scripts/fetch-kernel` fetches it
/// (once, cached in `.build-kernels/`, ignored by git): the bzImage and its debug vmlinux (an
/// ELF with a PVH entry note and full symbols) of the same version. Nil, with a loud warning
/// saying why, when they cannot be had.
enum DebianKernel {
    static let pair: (vmlinuz: String, vmlinux: String)? = {
        let r = Harness.run([Harness.repository.appendingPathComponent("scripts/fetch-kernel").path], timeout: 1800)
        var paths: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2 { paths[String(parts[0])] = String(parts[1]) }
        }
        guard r.status == 0, let vmlinuz = paths["vmlinuz"], let vmlinux = paths["vmlinux"] else {
            Harness.warn("scripts/fetch-kernel could not fetch Debian's cloud kernel: the Linux kernel tests are SKIPPED\n"
                + r.output)
            return nil
        }
        return (vmlinuz, vmlinux)
    }()

    /// The debug vmlinux: gdb's symbols, and a kernel gdbvmm boots through PVH.
    static var debugVmlinux: String? { pair?.vmlinux }
    /// The bzImage of the same build (`/boot/vmlinuz-*`).
    static var bzImage: String? { pair?.vmlinuz }
}

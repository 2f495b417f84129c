import Foundation

/// Debian's cloud kernel for the Linux end-to-end tests: its debug vmlinux (an ELF with a PVH
/// entry note and full symbols) from the `-dbg` package, fetched with apt once and cached in
/// `.build-kernels/` (ignored by git). Nil, with a loud warning saying why, when it cannot be had.
enum DebianKernel {
    static let cache = Harness.repository.appendingPathComponent(".build-kernels")

    static let debugVmlinux: String? = {
        let fm = FileManager.default
        try? fm.createDirectory(at: cache, withIntermediateDirectories: true)
        if let found = existing() { return found }
        guard let package = packageName() else {
            Harness.warn("no linux-image-*-cloud-amd64-dbg package is known to apt: Linux kernel tests are SKIPPED (apt-get update; apt-cache depends linux-image-cloud-amd64-dbg)")
            return nil
        }
        let download = Harness.run(["sh", "-c", "cd '\(cache.path)' && apt-get download \(package) 2>&1"], timeout: 900)
        guard download.status == 0,
              let deb = (try? fm.contentsOfDirectory(atPath: cache.path))?.first(where: { $0.hasPrefix(package) && $0.hasSuffix(".deb") }) else {
            Harness.warn("downloading \(package) failed: Linux kernel tests are SKIPPED\n\(download.output)")
            return nil
        }
        let extract = Harness.run(["sh", "-c", """
            cd '\(cache.path)' && dpkg-deb --fsys-tarfile '\(deb)' | tar -x --wildcards './usr/lib/debug/boot/vmlinux-*' \
            && mv usr/lib/debug/boot/vmlinux-* . && rm -rf usr '\(deb)'
            """], timeout: 600)
        guard extract.status == 0, let found = existing() else {
            Harness.warn("extracting the vmlinux from \(deb) failed: Linux kernel tests are SKIPPED\n\(extract.output)")
            return nil
        }
        return found
    }()

    private static func existing() -> String? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: cache.path)) ?? []
        return names.filter { $0.hasPrefix("vmlinux-") }.sorted().last.map { cache.appendingPathComponent($0).path }
    }

    /// The versioned package the meta-package points at (after `apt-get update` if apt knows none).
    private static func packageName() -> String? {
        func lookup() -> String? {
            let r = Harness.run(["apt-cache", "depends", "linux-image-cloud-amd64-dbg"], timeout: 120)
            return r.stdout.split(separator: "\n").compactMap { line -> String? in
                let t = line.trimmingCharacters(in: .whitespaces)
                guard t.hasPrefix("Depends: linux-image-"), t.hasSuffix("-cloud-amd64-dbg") else { return nil }
                return String(t.dropFirst("Depends: ".count))
            }.first
        }
        if let name = lookup() { return name }
        _ = Harness.run(["apt-get", "update", "-qq"], timeout: 600)
        return lookup()
    }
}

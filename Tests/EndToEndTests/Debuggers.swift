import Foundation
import Glibc

/// The debuggers beyond the harness's gdb: gdb 18 and LLDB 23 from scripts/newer-debuggers
/// (PyPI, cached in .build-debuggers/), and Debian's LLDB. Each is nil, with a loud warning,
/// where it cannot be had.
enum Debuggers {
    /// The directory scripts/newer-debuggers installs gdb 18 and LLDB 23 into.
    static let newerBin: String? = {
        let script = Harness.repository.appendingPathComponent("scripts/newer-debuggers").path
        let r = Harness.run([script], timeout: 900)
        let dir = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard r.status == 0, !dir.isEmpty else {
            Harness.warn("scripts/newer-debuggers failed, tests with gdb 18 and LLDB 23 are SKIPPED:\n\(r.stderr)")
            return nil
        }
        return dir
    }()

    static let gdb18: String? = executable(newerBin.map { $0 + "/gdb" }, "gdb 18")
    static let lldb23: String? = executable(newerBin.map { $0 + "/lldb" }, "LLDB 23")

    /// Debian's lldb (`apt-get install -y lldb`).
    static let debianLLDB: String? = executable(access("/usr/bin/lldb", X_OK) == 0 ? "/usr/bin/lldb" : nil,
                                                 "Debian's lldb (apt-get install -y lldb)")

    /// Debian's python3-lldb installs its module under python3.X while lldb looks in python3:
    /// the directory that has it, for PYTHONPATH.
    static let debianLLDBPythonPath: String? = {
        let lib = "/usr/lib"
        guard let llvms = try? FileManager.default.contentsOfDirectory(atPath: lib) else { return nil }
        for llvm in llvms.sorted().reversed() where llvm.hasPrefix("llvm-") {
            let base = "\(lib)/\(llvm)/lib"
            for python in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] where python.hasPrefix("python3.") {
                let dir = "\(base)/\(python)/dist-packages"
                if access("\(dir)/lldb/embedded_interpreter.py", R_OK) == 0 { return dir }
            }
        }
        return nil
    }()

    private static func executable(_ path: String?, _ what: String) -> String? {
        guard let path, access(path, X_OK) == 0 else {
            Harness.warn("\(what) is not available: its end-to-end tests are SKIPPED")
            return nil
        }
        return path
    }
}

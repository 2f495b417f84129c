import Foundation
import Glibc

// gdbvmm: boot a guest on KVM and serve gdb. Exit statuses are documented in `usage`.
signal(SIGPIPE, SIG_IGN)

let options: Options
do {
    options = try parseOptions(Array(CommandLine.arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("gdbvmm: \(error)\nTry 'gdbvmm --help'.\n".utf8))
    exit(2)
}
if options.showHelp {
    print(usage)
    exit(0)
}
if options.showVersion {
    print(version)
    exit(0)
}
exit(runVMM(options))

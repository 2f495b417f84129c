import CKVM
import Foundation
import Glibc

// gdbvmm: boot a guest on KVM and serve gdb. Exit statuses are documented in `usage`.

// We may have been spawned with signals blocked (by a thread that blocks them); the vCPU kick
// must work. SIGINT, SIGTERM and SIGHUP are then taken over, before any thread starts.
_ = ckvm_unblock_all_signals()
TerminationSignals.start()
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

/// The command line: the contract that scripts and users rely on (see `usage`).
struct Options: Equatable {
    enum Endpoint: Equatable, CustomStringConvertible {
        case tcp(host: String, port: UInt16)
        case unix(path: String)
        case stdio

        var description: String {
            switch self {
            case let .tcp(host, port): return "tcp:\(host):\(port)"
            case .unix(let path): return "unix:\(path)"
            case .stdio: return "stdio"
            }
        }
    }

    enum Serial: Equatable { case stdio, file(String), none }

    var guest = ""
    var memory: UInt64 = 128 << 20
    var cpus = 1
    var commandLine = ""
    var initrd: String?
    var gdb: Endpoint?
    var waitForGDB = false
    var serial: Serial = .stdio
    /// `--timeout SECONDS`: the VM is ended (status 124) this long after it starts.
    var timeout: Double?
    var showHelp = false
    var showVersion = false
}

struct UsageError: Error, Equatable, CustomStringConvertible {
    var message: String
    var description: String { message }
}

let version = "gdbvmm 0.1.0"

let usage = """
    usage: gdbvmm [OPTIONS] GUEST

    Boot GUEST (an ELF64 kernel, a multiboot v1 image, a PVH ELF, or a Linux bzImage) on KVM and
    let gdb debug it.

    options:
      -m, --memory SIZE          guest RAM, e.g. 64M or 1G (default 128M, at most 3G)
          --cpus N               number of vCPUs, 1 to 64 (default 1); each is a gdb thread
          --cmdline TEXT         command line handed to multiboot, PVH and Linux guests
          --append TEXT          the same as --cmdline (the QEMU habit)
          --initrd FILE          initial ramdisk for a Linux bzImage or PVH guest, placed at the
                                 top of guest RAM
          --gdb ENDPOINT         serve gdb on tcp:[HOST:]PORT (HOST defaults to 127.0.0.1; PORT 0
                                 picks a free port), unix:PATH, or stdio (for gdb's
                                 `target remote | gdbvmm --gdb stdio GUEST`)
      -s                         shorthand for --gdb tcp:127.0.0.1:1234 (the QEMU habit)
      -S, --wait-gdb             hold the guest at its first instruction until gdb resumes it
          --serial stdio|file:PATH|none
                                 where the guest's serial port (0x3F8) and port 0xE9 go
                                 (default stdio; stderr with --gdb stdio)
          --timeout SECONDS      end the VM SECONDS after it starts (fractions allowed), with
                                 exit status 124 and every vCPU's registers on stderr: for CI
                                 jobs whose guest may hang (counted with or without gdb)
      -h, --help                 show this help
          --version              show the version

    While serving gdb on TCP or a Unix socket, gdbvmm prints one line to stderr before it
    accepts: `gdbvmm: waiting for gdb on tcp:127.0.0.1:PORT` (the real port).

    exit status:
      (v << 1) | 1   the guest wrote v to the debug-exit port 0xF4 (QEMU's isa-debug-exit)
      0              the guest powered off (ACPI, or port 0x604), every vCPU halted, or gdb
                     killed it
      6              the guest reset the machine (reboot: ACPI reset register 0xCF9, or 0xFE
                     to port 0x64)
      2              bad usage, an unreadable or invalid image, or /dev/kvm missing/inaccessible
      4              the guest crashed (triple fault, emulation failure, failed entry); the vCPU
                     registers are printed to stderr
      124            the guest ran past --timeout; the vCPU registers are printed to stderr
      129, 130, 143  ended by SIGHUP, SIGINT or SIGTERM (128 + the signal), socket file removed
    """

/// Parses "64M", "1G", "512K", "1048576" (bytes) into bytes.
func parseSize(_ text: String) -> UInt64? {
    guard let last = text.last else { return nil }
    var digits = Substring(text)
    var shift: UInt64 = 0
    switch last {
    case "k", "K": shift = 10; digits = digits.dropLast()
    case "m", "M": shift = 20; digits = digits.dropLast()
    case "g", "G": shift = 30; digits = digits.dropLast()
    default: break
    }
    guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let value = UInt64(digits), value > 0 else { return nil }
    let (bytes, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
    return overflow ? nil : bytes
}

func parseEndpoint(_ text: String) -> Options.Endpoint? {
    if text == "stdio" { return .stdio }
    if text.hasPrefix("unix:") {
        let path = String(text.dropFirst(5))
        return path.isEmpty ? nil : .unix(path: path)
    }
    if text.hasPrefix("tcp:") {
        let rest = text.dropFirst(4)
        var host = "127.0.0.1"
        var portText = Substring(rest)
        if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            portText = rest[rest.index(after: colon)...]
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            if host.isEmpty { host = "127.0.0.1" }
        }
        guard let port = UInt16(portText) else { return nil }
        return .tcp(host: host, port: port)
    }
    return nil
}

func parseOptions(_ arguments: [String]) throws(UsageError) -> Options {
    var options = Options()
    var guest: String?
    var index = 0

    func value(_ name: String, inline: String?) throws(UsageError) -> String {
        if let inline { return inline }
        index += 1
        guard index < arguments.count else { throw UsageError(message: "\(name) needs a value") }
        return arguments[index]
    }

    while index < arguments.count {
        let argument = arguments[index]
        var name = argument
        var inline: String?
        if argument.hasPrefix("--"), let eq = argument.firstIndex(of: "=") {
            name = String(argument[..<eq])
            inline = String(argument[argument.index(after: eq)...])
        }
        switch name {
        case "-h", "--help": options.showHelp = true
        case "--version": options.showVersion = true
        case "-m", "--memory":
            let text = try value(name, inline: inline)
            guard let size = parseSize(text) else {
                throw UsageError(message: "invalid memory size '\(text)': use a number with K, M or G, e.g. 64M or 1G")
            }
            options.memory = size
        case "--cpus":
            let text = try value(name, inline: inline)
            guard let n = Int(text), (1...64).contains(n) else {
                throw UsageError(message: "invalid --cpus '\(text)': give a number from 1 to 64")
            }
            options.cpus = n
        case "--cmdline", "--append": options.commandLine = try value(name, inline: inline)
        case "--initrd": options.initrd = try value(name, inline: inline)
        case "--gdb":
            let text = try value(name, inline: inline)
            guard let endpoint = parseEndpoint(text) else {
                throw UsageError(message: "invalid --gdb '\(text)': use tcp:[HOST:]PORT, unix:PATH or stdio")
            }
            options.gdb = endpoint
        case "-s": options.gdb = .tcp(host: "127.0.0.1", port: 1234)
        case "-S", "--wait-gdb": options.waitForGDB = true
        case "--timeout":
            let text = try value(name, inline: inline)
            guard let seconds = Double(text), seconds.isFinite, seconds > 0, seconds <= 1e9, text.allSatisfy({ $0.isNumber || $0 == "." }) else {
                throw UsageError(message: "invalid --timeout '\(text)': give a number of seconds greater than 0, e.g. 30 or 2.5")
            }
            options.timeout = seconds
        case "--serial":
            let text = try value(name, inline: inline)
            if text == "stdio" { options.serial = .stdio }
            else if text == "none" { options.serial = .none }
            else if text.hasPrefix("file:"), text.count > 5 { options.serial = .file(String(text.dropFirst(5))) }
            else { throw UsageError(message: "invalid --serial '\(text)': use stdio, file:PATH or none") }
        default:
            if argument.hasPrefix("-"), argument != "-" {
                throw UsageError(message: "unknown option '\(argument)'")
            }
            if guest != nil { throw UsageError(message: "more than one guest image given ('\(guest!)' and '\(argument)')") }
            guest = argument
        }
        index += 1
    }
    if options.showHelp || options.showVersion { return options }
    guard let guest else { throw UsageError(message: "no guest image given") }
    options.guest = guest
    if options.waitForGDB && options.gdb == nil {
        throw UsageError(message: "-S/--wait-gdb needs a gdb endpoint: add -s or --gdb tcp:PORT")
    }
    return options
}

/// Why a machine could not be built or reset; every case says what the user can do about it.
public enum MachineError: Error, Sendable, CustomStringConvertible {
    case kvmUnavailable(path: String, SystemError)
    case image(LoadError)
    case configuration(String)
    case system(SystemError)

    public var description: String {
        switch self {
        case let .kvmUnavailable(path, error):
            switch error.errno {
            case ENOENT_:
                return "\(path) does not exist: this machine has no KVM. Enable virtualization (VT-x/AMD-V) in firmware and load the kvm module (modprobe kvm_intel or kvm_amd)"
            case EACCES_, EPERM_:
                return "\(path) is not accessible to this user: add yourself to the 'kvm' group (sudo usermod -aG kvm $USER, then log in again) or run as root"
            default:
                return "cannot use \(path): \(error)"
            }
        case .image(let error):
            return "invalid guest image: \(error)"
        case .configuration(let message):
            return message
        case .system(let error):
            return "\(error)"
        }
    }
}

import Glibc
private let ENOENT_ = ENOENT
private let EACCES_ = EACCES
private let EPERM_ = EPERM

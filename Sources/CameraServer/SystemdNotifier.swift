#if canImport(Glibc)
import Glibc
#endif

/// The sd_notify protocol (sd_notify(3)), spoken directly: one AF_UNIX datagram of "KEY=VALUE" lines
/// to the socket named by $NOTIFY_SOCKET (a path, or an abstract name starting with '@'). Linking
/// libsystemd for three message kinds would add a dependency and 800 kB for nothing. Without
/// $NOTIFY_SOCKET (not under systemd) every call does nothing.
public final class SystemdNotifier: @unchecked Sendable {
    private let address: sockaddr_un?
    private let addressLength: socklen_t
    private let socketDescriptor: Int32

    /// How often systemd wants WATCHDOG=1 (half of WatchdogSec=, as sd_watchdog_enabled(3) advises),
    /// or nil when the watchdog is off or meant for another process (WATCHDOG_PID).
    public let watchdogInterval: Duration?

    public init(environment: (String) -> String? = Environment.value) {
        if let microseconds = environment("WATCHDOG_USEC").flatMap(UInt64.init), microseconds > 0,
           environment("WATCHDOG_PID").flatMap(Int32.init).map({ $0 == getpid() }) ?? true {
            watchdogInterval = .microseconds(Int64(microseconds / 2))
        } else {
            watchdogInterval = nil
        }
        guard let path = environment("NOTIFY_SOCKET"), path.hasPrefix("/") || path.hasPrefix("@"),
              path.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else {
            address = nil
            addressLength = 0
            socketDescriptor = -1
            return
        }
        var raw = sockaddr_un()
        raw.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace: leading NUL
        withUnsafeMutableBytes(of: &raw.sun_path) { target in
            for (index, byte) in bytes.enumerated() { target[index] = byte }
        }
        address = raw
        addressLength = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
        socketDescriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    deinit {
        if socketDescriptor >= 0 { close(socketDescriptor) }
    }

    public var isEnabled: Bool { address != nil && socketDescriptor >= 0 }

    /// READY=1: the daemon serves (Type=notify waits for this).
    public func ready(status: String) { send("READY=1\nSTATUS=\(status)") }

    /// STATUS=: one line `systemctl status` shows.
    public func status(_ text: String) { send("STATUS=\(text)") }

    /// WATCHDOG=1, sent from the event loop: if the loop hangs, the pings stop and systemd restarts us.
    public func watchdogPing() { send("WATCHDOG=1") }

    public func stopping() { send("STOPPING=1") }

    @discardableResult
    func send(_ message: String) -> Bool {
        guard var address, socketDescriptor >= 0 else { return false }
        let bytes = Array(message.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                sendto(socketDescriptor, bytes, bytes.count, Int32(MSG_NOSIGNAL), socketAddress, addressLength)
            }
        }
        return sent == bytes.count
    }
}

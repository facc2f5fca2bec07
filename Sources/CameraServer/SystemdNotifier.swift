#if canImport(Glibc)
import Glibc
#endif

/// Tells systemd how the daemon is doing: the sd_notify(3) protocol, spoken directly.
///
/// The protocol is one AF_UNIX datagram of newline-separated `KEY=VALUE` assignments sent to the
/// socket named by `$NOTIFY_SOCKET` — a file system path (`/run/systemd/notify`) or, with a leading
/// `@`, a name in the abstract namespace. systemd learns the sender's PID from the kernel
/// (SCM_CREDENTIALS), which is what `NotifyAccess=main` checks. Linking libsystemd for four fixed
/// messages would add a runtime dependency (and its own dependencies) to every board image for no
/// gain, so this type speaks it with one socket and `sendto`.
///
/// Without `$NOTIFY_SOCKET` (not started by systemd, or a unit that is not `Type=notify`) every call
/// does nothing. Sends never block: the watchdog ping comes from the NIO event loop, which must not
/// wait on systemd; a message that does not fit in systemd's queue is dropped and reported as `false`.
public final class SystemdNotifier: Sendable {
    /// The `sockaddr_un.sun_path` bytes to send to (a leading 0 for the abstract namespace), or nil.
    private let socketPath: [UInt8]?
    private let socketDescriptor: Int32

    /// `WatchdogSec=` as systemd passed it (`$WATCHDOG_USEC`), when the watchdog is on for this
    /// process; nil when it is off or meant for another process (`$WATCHDOG_PID`).
    public let watchdogTimeout: Duration?

    /// How often to send `WATCHDOG=1`: half of `watchdogTimeout`, as sd_watchdog_enabled(3) advises,
    /// so one late ping never trips the watchdog. nil when the watchdog is off.
    public let watchdogInterval: Duration?

    /// `environment` looks up a variable (the process environment by default; tests pass a table).
    public init(environment: (String) -> String? = Environment.value) {
        let timeout = Self.watchdogTimeout(
            microseconds: environment("WATCHDOG_USEC"), process: environment("WATCHDOG_PID"), ourProcess: getpid())
        watchdogTimeout = timeout
        watchdogInterval = timeout.map { $0 / 2 }

        guard let path = environment("NOTIFY_SOCKET").flatMap(Self.socketPath(notifySocket:)) else {
            socketPath = nil
            socketDescriptor = -1
            return
        }
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        socketPath = descriptor >= 0 ? path : nil
        socketDescriptor = descriptor
    }

    deinit {
        if socketDescriptor >= 0 { close(socketDescriptor) }
    }

    /// True when `$NOTIFY_SOCKET` named a usable socket: the messages below go somewhere.
    public var isEnabled: Bool { socketPath != nil }

    /// `READY=1`: start-up is over and the daemon serves (`Type=notify` waits for this).
    public func ready() { send("READY=1") }

    /// `READY=1` and the first `STATUS=` line, in one datagram.
    public func ready(status text: String) { send("READY=1\nSTATUS=\(Self.oneLine(text))") }

    /// `STATUS=`: the line `systemctl status rtcam` shows (what is streamed, how many viewers).
    public func status(_ text: String) { send("STATUS=\(Self.oneLine(text))") }

    /// `WATCHDOG=1`. Send it from the event loop that does the work, every `watchdogInterval`: if
    /// that loop hangs, the pings stop, systemd kills the service after `WatchdogSec=` and
    /// `Restart=on-failure` starts it again.
    public func watchdogPing() { send("WATCHDOG=1") }

    /// `STOPPING=1`: shutdown has begun (`systemctl status` shows "deactivating").
    public func stopping() { send("STOPPING=1") }

    /// Sends one datagram; true when the whole message went out.
    @discardableResult
    func send(_ message: String) -> Bool {
        guard let socketPath else { return false }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { sunPath in
            sunPath.copyBytes(from: socketPath)
        }
        // A path is passed with its terminating NUL; an abstract name is exactly its bytes (unix(7)).
        let isAbstract = socketPath.first == 0
        let length = socklen_t(MemoryLayout<sa_family_t>.size + socketPath.count + (isAbstract ? 0 : 1))
        let bytes = Array(message.utf8)
        while true {
            let sent = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                    bytes.withUnsafeBytes { payload in
                        sendto(socketDescriptor, payload.baseAddress, payload.count,
                               Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT), socketAddress, length)
                    }
                }
            }
            if sent < 0 && errno == EINTR { continue }
            return sent == bytes.count
        }
    }

    /// The `sun_path` bytes for a `$NOTIFY_SOCKET` value: an absolute path, or `@name` for the abstract
    /// namespace (the `@` becomes the leading 0). nil for anything else — relative paths, and the
    /// `vsock:` form newer systemd versions (253+) use for virtual machines, which rtcam does not need —
    /// and for names that do not fit in `sun_path`.
    static func socketPath(notifySocket value: String) -> [UInt8]? {
        var bytes = Array(value.utf8)
        let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        guard bytes.count >= 2, !bytes.contains(0) else { return nil }
        switch bytes[0] {
        case UInt8(ascii: "/"):
            return bytes.count < capacity ? bytes : nil  // room for the terminating NUL
        case UInt8(ascii: "@"):
            bytes[0] = 0
            return bytes.count <= capacity ? bytes : nil
        default:
            return nil
        }
    }

    /// `WatchdogSec=` for this process, from `$WATCHDOG_USEC` and `$WATCHDOG_PID` (sd_watchdog_enabled(3)):
    /// on when the microseconds are a positive number and the PID, if given, is ours.
    static func watchdogTimeout(microseconds: String?, process: String?, ourProcess: pid_t) -> Duration? {
        guard let microseconds, let value = UInt64(microseconds), value > 0, value <= UInt64(Int64.max) else {
            return nil
        }
        if let process {
            guard let pid = pid_t(process), pid == ourProcess else { return nil }
        }
        return .microseconds(Int64(value))
    }

    /// A status text as one line: a newline would start another assignment (`STATUS=x\nREADY=1`).
    static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }
}

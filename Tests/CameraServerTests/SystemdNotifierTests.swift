import Testing
@testable import CameraServer

#if canImport(Glibc)
import Glibc
#endif

/// sd_notify over a real AF_UNIX datagram socket, path and abstract forms (sd_notify(3)).
@Suite struct SystemdNotifierTests {
    /// A bound datagram socket standing in for systemd's notification socket.
    final class NotifySocket {
        let descriptor: Int32
        let name: String

        init(abstract: Bool) {
            descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let unique = "rtcam-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            name = abstract ? "@" + unique : "/tmp/" + unique
            var bytes = Array(name.utf8)
            if abstract { bytes[0] = 0 }
            withUnsafeMutableBytes(of: &address.sun_path) { target in
                for (index, byte) in bytes.enumerated() { target[index] = byte }
            }
            let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
            }
            precondition(bound == 0, "bind failed: \(errno)")
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit {
            close(descriptor)
            if !name.hasPrefix("@") { unlink(name) }
        }

        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(descriptor, &buffer, buffer.count, 0)
            return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : nil
        }
    }

    @Test(arguments: [false, true])
    func sendsTheExactMessages(abstract: Bool) {
        let socket = NotifySocket(abstract: abstract)
        let notifier = SystemdNotifier(environment: { $0 == "NOTIFY_SOCKET" ? socket.name : nil })
        #expect(notifier.isEnabled)
        notifier.ready(status: "streaming to 0 viewers")
        #expect(socket.receive() == "READY=1\nSTATUS=streaming to 0 viewers")
        notifier.status("2 viewer(s)")
        #expect(socket.receive() == "STATUS=2 viewer(s)")
        notifier.watchdogPing()
        #expect(socket.receive() == "WATCHDOG=1")
        notifier.stopping()
        #expect(socket.receive() == "STOPPING=1")
    }

    @Test func watchdogIntervalIsHalfOfWatchdogSecAndOnlyForThisProcess() {
        let ours = SystemdNotifier(environment: ["WATCHDOG_USEC": "10000000", "WATCHDOG_PID": String(getpid())].lookup)
        #expect(ours.watchdogInterval == .seconds(5))
        let noPID = SystemdNotifier(environment: ["WATCHDOG_USEC": "4000000"].lookup)
        #expect(noPID.watchdogInterval == .seconds(2))
        let someoneElse = SystemdNotifier(environment: ["WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"].lookup)
        #expect(someoneElse.watchdogInterval == nil)
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "0"].lookup).watchdogInterval == nil)
    }

    @Test func withoutNotifySocketNothingIsSent() {
        let notifier = SystemdNotifier(environment: { _ in nil })
        #expect(!notifier.isEnabled)
        #expect(!notifier.send("READY=1"))
        #expect(!SystemdNotifier(environment: { $0 == "NOTIFY_SOCKET" ? "relative/path" : nil }).isEnabled)
    }
}

extension Dictionary where Key == String, Value == String {
    var lookup: (String) -> String? { { self[$0] } }
}

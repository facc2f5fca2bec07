import Testing
@testable import CameraServer

#if canImport(Glibc)
import Glibc
#endif

/// sd_notify(3) against a real AF_UNIX datagram socket standing in for systemd's, in both forms
/// `$NOTIFY_SOCKET` takes: a path (in a fresh temporary directory) and an abstract name (`@…`).
/// Serialized: some tests set `NOTIFY_SOCKET` in the process environment, as systemd does.
@Suite(.serialized) struct SystemdNotifierTests {
    /// A bound, receiving datagram socket: what systemd listens on.
    final class FakeSystemdSocket {
        let descriptor: Int32
        /// The `$NOTIFY_SOCKET` value that reaches it.
        let notifySocket: String
        private let directory: String?

        init(abstract: Bool) throws {
            let unique = "rtcam-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            if abstract {
                directory = nil
                notifySocket = "@" + unique
            } else {
                var template = Array("/tmp/rtcam-notify-test-XXXXXX".utf8CString)
                // The name is read inside the closure: mkdtemp returns a pointer into the array's buffer,
                // which is valid only there (an optimized build reused it: a crash as aarch64).
                let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!).map { String(cString: $0) } }
                let directory = try #require(made)
                self.directory = directory
                notifySocket = directory + "/notify"
            }
            descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            try #require(descriptor >= 0)

            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            var path = Array(notifySocket.utf8)
            if abstract { path[0] = 0 }
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
            let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (abstract ? 0 : 1))
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
            }
            try #require(bound == 0, "bind \(notifySocket): errno \(errno)")
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit {
            close(descriptor)
            if let directory {
                unlink(notifySocket)
                rmdir(directory)
            }
        }

        /// The next datagram, or nil after two seconds without one.
        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            return count >= 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : nil
        }

        /// True when no datagram is waiting.
        func isEmpty() -> Bool {
            var byte: UInt8 = 0
            return recv(descriptor, &byte, 1, Int32(MSG_DONTWAIT) | Int32(MSG_PEEK)) < 0
        }
    }

    /// Runs `body` with `NOTIFY_SOCKET` (and the watchdog variables) set in the process environment.
    func withEnvironment(_ variables: [String: String], _ body: () throws -> Void) rethrows {
        for (name, value) in variables { setenv(name, value, 1) }
        defer { for name in variables.keys { unsetenv(name) } }
        try body()
    }

    @Test(arguments: [false, true])
    func sendsTheExactMessagesThroughNotifySocket(abstract: Bool) throws {
        let systemd = try FakeSystemdSocket(abstract: abstract)
        try withEnvironment(["NOTIFY_SOCKET": systemd.notifySocket]) {
            let notifier = SystemdNotifier()
            #expect(notifier.isEnabled)
            notifier.ready()
            #expect(systemd.receive() == "READY=1")
            notifier.ready(status: "0 viewer(s); 1280x720 30 fps H.264 2000 kbit/s")
            #expect(systemd.receive() == "READY=1\nSTATUS=0 viewer(s); 1280x720 30 fps H.264 2000 kbit/s")
            notifier.status("2 viewer(s)")
            #expect(systemd.receive() == "STATUS=2 viewer(s)")
            notifier.watchdogPing()
            #expect(systemd.receive() == "WATCHDOG=1")
            notifier.stopping()
            #expect(systemd.receive() == "STOPPING=1")
            #expect(systemd.isEmpty())
        }
    }

    @Test func aStatusTextCannotInjectAnotherAssignment() throws {
        let systemd = try FakeSystemdSocket(abstract: true)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": systemd.notifySocket].lookup)
        notifier.status("camera: evil\nREADY=1\r\nWATCHDOG=1")
        #expect(systemd.receive() == "STATUS=camera: evil READY=1 WATCHDOG=1")
    }

    @Test func watchdogIsHalfOfWatchdogSecAndOnlyForThisProcess() {
        let ours = SystemdNotifier(environment: ["WATCHDOG_USEC": "10000000", "WATCHDOG_PID": String(getpid())].lookup)
        #expect(ours.watchdogTimeout == .seconds(10))
        #expect(ours.watchdogInterval == .seconds(5))
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "3000000"].lookup).watchdogInterval == .milliseconds(1500))
        for (microseconds, pid) in [("10000000", "1"), ("10000000", "not-a-pid"), ("0", nil), ("-5", nil),
                                    ("ten", nil), ("99999999999999999999", nil), ("", nil)] as [(String, String?)] {
            var environment = ["WATCHDOG_USEC": microseconds]
            environment["WATCHDOG_PID"] = pid
            let notifier = SystemdNotifier(environment: environment.lookup)
            #expect(notifier.watchdogTimeout == nil, "WATCHDOG_USEC=\(microseconds) WATCHDOG_PID=\(pid ?? "-")")
            #expect(notifier.watchdogInterval == nil)
        }
    }

    @Test func watchdogComesFromTheProcessEnvironment() {
        withEnvironment(["WATCHDOG_USEC": "20000000", "WATCHDOG_PID": String(getpid())]) {
            #expect(SystemdNotifier().watchdogInterval == .seconds(10))
        }
        #expect(SystemdNotifier().watchdogInterval == nil)
    }

    @Test func withoutAUsableNotifySocketNothingIsSent() {
        if getenv("NOTIFY_SOCKET") == nil { #expect(!SystemdNotifier().isEnabled) }
        let tooLong = "/tmp/" + String(repeating: "x", count: 120)
        for value in [nil, "", "relative/notify", "@", "/", "vsock:2:1234", tooLong] as [String?] {
            let notifier = SystemdNotifier(environment: { $0 == "NOTIFY_SOCKET" ? value : nil })
            #expect(!notifier.isEnabled, "NOTIFY_SOCKET=\(value ?? "(unset)")")
            #expect(!notifier.send("READY=1"))
            notifier.ready(status: "nobody listens")
            notifier.watchdogPing()
        }
    }

    @Test func theLongestNamesThatFitAreAccepted() {
        let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)  // 108 on Linux
        #expect(SystemdNotifier.socketPath(notifySocket: "/" + String(repeating: "p", count: capacity - 2))?.count == capacity - 1)
        #expect(SystemdNotifier.socketPath(notifySocket: "/" + String(repeating: "p", count: capacity - 1)) == nil)
        #expect(SystemdNotifier.socketPath(notifySocket: "@" + String(repeating: "a", count: capacity - 1))?.count == capacity)
        #expect(SystemdNotifier.socketPath(notifySocket: "@" + String(repeating: "a", count: capacity)) == nil)
        #expect(SystemdNotifier.socketPath(notifySocket: "@name") == [0] + Array("name".utf8))
    }

    @Test func aVanishedSocketMakesSendsFailWithoutTrapping() throws {
        var systemd: FakeSystemdSocket? = try FakeSystemdSocket(abstract: false)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": systemd!.notifySocket].lookup)
        #expect(notifier.send("WATCHDOG=1"))
        systemd = nil  // closed and unlinked: systemd restarted, say
        #expect(!notifier.send("WATCHDOG=1"))
    }

    /// The pings come from the event loop: when systemd does not read, sends fail instead of blocking.
    @Test func aFullQueueNeverBlocksTheSender() throws {
        let systemd = try FakeSystemdSocket(abstract: true)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": systemd.notifySocket].lookup)
        var failed = 0
        for _ in 0..<5000 {
            if !notifier.send("WATCHDOG=1") { failed += 1 }
        }
        #expect(failed > 0)
        #expect(systemd.receive() == "WATCHDOG=1")
    }
}

extension Dictionary where Key == String, Value == String {
    /// The dictionary as an environment lookup.
    fileprivate var lookup: (String) -> String? { { self[$0] } }
}

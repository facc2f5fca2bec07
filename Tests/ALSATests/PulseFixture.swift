import Glibc
import RTCBase
import Testing

/// CLOCK_MONOTONIC now (the same base ALSACapture and V4L2 timestamps use).
func monotonicNow() -> MonotonicTime {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return MonotonicTime(nanoseconds: UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec))
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
}

/// A private temporary directory, removed with everything in it when the test is done.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/rtcam-alsa-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!).map { String(cString: $0) } }
        guard let made else { throw FixtureError(description: "mkdtemp failed: errno \(errno)") }
        path = made
    }

    func write(_ name: String, bytes: [UInt8]) throws -> String {
        let file = path + "/" + name
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FixtureError(description: "cannot create \(file): errno \(errno)") }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard written > 0 else { throw FixtureError(description: "write \(file) failed: errno \(errno)") }
            offset += written
        }
        return file
    }

    deinit {
        // Our own directory only: /bin/rm -rf on the exact path mkdtemp gave us.
        if let pid = try? spawnProcess(executable: "/bin/rm", arguments: ["rm", "-rf", path], environment: [:]) {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }
}

/// The full path of `name` in $PATH (plus the usual sbin/bin directories), or nil.
func findExecutable(_ name: String) -> String? {
    let path = getenv("PATH").map { String(cString: $0) } ?? ""
    let directories = path.split(separator: ":").map(String.init) + ["/usr/bin", "/bin", "/usr/local/bin"]
    for directory in directories where access(directory + "/" + name, X_OK) == 0 {
        return directory + "/" + name
    }
    return nil
}

/// posix_spawn with a given environment (merged over this process's) and optional stdin/stdout files.
func spawnProcess(executable: String, arguments: [String], environment: [String: String],
                  standardInput: String? = nil, standardOutput: String? = nil) throws -> pid_t {
    var merged: [String: String] = [:]
    var entry = environ
    while let pointer = entry.pointee {
        let text = String(cString: pointer)
        if let equals = text.firstIndex(of: "=") {
            merged[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        entry += 1
    }
    for (key, value) in environment { merged[key] = value }

    let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?] = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        for pointer in argv { free(pointer) }
        for pointer in envp { free(pointer) }
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, standardInput ?? "/dev/null", O_RDONLY, 0)
    if let standardOutput {
        posix_spawn_file_actions_addopen(&actions, 1, standardOutput, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
    }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, executable, &actions, nil, argv, envp)
    guard result == 0 else { throw FixtureError(description: "posix_spawn \(executable) failed: errno \(result)") }
    return pid
}

/// A private PulseAudio server (null sink "s", native protocol on a socket in a temp dir, anonymous
/// auth) — a paced, real-time capture source without a sound card. Whatever `play` sends to "s" is
/// captured from "s.monitor" through alsa-lib's `pulse` PCM plugin (libasound2-plugins).
final class PulseFixture {
    let directory: TemporaryDirectory
    let socketPath: String
    private var processes: [pid_t] = []
    private let environment: [String: String]
    private let pacat: String
    private let pactlPath: String
    private var pactlRuns = 0

    /// Fails (does not skip) when pulseaudio or pacat are missing: CI must install them.
    init() throws {
        guard let pulseaudio = findExecutable("pulseaudio") else {
            throw FixtureError(description: "pulseaudio not found: install the Debian packages pulseaudio, pulseaudio-utils and libasound2-plugins")
        }
        guard let pacat = findExecutable("pacat"), let pactl = findExecutable("pactl") else {
            throw FixtureError(description: "pacat or pactl not found: install pulseaudio-utils")
        }
        self.pacat = pacat
        pactlPath = pactl
        guard access("/usr/lib/\(Self.multiarch)/alsa-lib/libasound_module_pcm_pulse.so", R_OK) == 0 else {
            throw FixtureError(description: "alsa-lib pulse plugin missing: install libasound2-plugins")
        }
        directory = try TemporaryDirectory()
        socketPath = directory.path + "/native"
        environment = ["HOME": directory.path, "PULSE_RUNTIME_PATH": directory.path + "/runtime",
                       "XDG_RUNTIME_DIR": directory.path + "/runtime", "XDG_CONFIG_HOME": directory.path + "/config"]
        let pid = try spawnProcess(
            executable: pulseaudio,
            arguments: ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
                        "--disable-shm=yes", "--log-target=stderr", "--log-level=error",
                        "--load=module-null-sink sink_name=s rate=48000",
                        "--load=module-native-protocol-unix auth-anonymous=1 socket=\(socketPath)"],
            environment: environment, standardOutput: directory.path + "/pulseaudio.log")
        processes.append(pid)
        // Ready when the socket exists; give up after 5 s (or when the server died).
        let deadline = monotonicNow() + .seconds(5)
        while access(socketPath, F_OK) != 0 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                processes.removeAll { $0 == pid }
                throw FixtureError(description: "pulseaudio exited early: \(log)")
            }
            guard monotonicNow() < deadline else { throw FixtureError(description: "pulseaudio socket never appeared: \(log)") }
            usleep(10_000)
        }
    }

    private static var multiarch: String {
        #if arch(arm64)
        return "aarch64-linux-gnu"
        #elseif arch(arm)
        return "arm-linux-gnueabihf"
        #else
        return "x86_64-linux-gnu"
        #endif
    }

    var log: String { readText(directory.path + "/pulseaudio.log") }

    /// The ALSA configuration text defining PCM `name` as the monitor of sink "s" of this server.
    func pcmDefinition(name: String) -> String {
        "pcm.\(name) { type pulse; device \"s.monitor\"; server \"unix:\(socketPath)\" }\n"
    }

    /// PCM `name` through alsa-lib's plug layer over a "device" that only runs at `deviceRate`: the
    /// `pulse` PCM opened at that rate (PulseAudio converts the 48 kHz monitor), behind `mmap_emul`
    /// (the `rate` plugin needs mmap access, which the `pulse` PCM lacks).
    func resamplingPCMDefinition(name: String, deviceRate: Int) -> String {
        """
        pcm.\(name)_device { type pulse; device "s.monitor"; server "unix:\(socketPath)" }
        pcm.\(name)_mmap { type mmap_emul; slave.pcm "\(name)_device" }
        pcm.\(name) { type plug; slave { pcm "\(name)_mmap"; rate \(deviceRate) } }

        """
    }

    /// Plays raw mono S16LE 48 kHz samples into sink "s" with pacat (in real time), and returns once
    /// the sink runs at pacat's latency (see `restartSinkClock`): `latencyMilliseconds`, or nil for
    /// pacat's default (2 s, the sink then renders in large blocks until a capture asks for less).
    func play(samples: [Int16], latencyMilliseconds: Int? = 20) throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(samples.count * 2)
        for sample in samples {
            let bits = UInt16(bitPattern: sample)
            bytes.append(UInt8(truncatingIfNeeded: bits))
            bytes.append(UInt8(truncatingIfNeeded: bits >> 8))
        }
        let file = try directory.write("tone-\(processes.count).raw", bytes: bytes)
        let pid = try spawnProcess(
            executable: pacat,
            arguments: ["pacat", "--server=unix:\(socketPath)", "-d", "s", "--playback", "--raw", "--rate=48000",
                        "--channels=1", "--format=s16le"] + (latencyMilliseconds.map { ["--latency-msec=\($0)"] } ?? []),
            environment: environment, standardInput: file, standardOutput: directory.path + "/pacat.log")
        processes.append(pid)
        // Wait for pacat's stream to exist, then restart the sink's clock.
        let deadline = monotonicNow() + .seconds(5)
        while try pactl(["list", "short", "sink-inputs"]).isEmpty {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                processes.removeAll { $0 == pid }
                throw FixtureError(description: "pacat exited early (status \(status))")
            }
            guard monotonicNow() < deadline else { throw FixtureError(description: "pacat's stream never appeared") }
            usleep(5_000)
        }
        try restartSinkClock()
    }

    /// module-null-sink renders up to 2 s ahead while no client asks for low latency (as when the
    /// server starts) and only looks at a new client's latency at its next wake-up: a capture from
    /// "s.monitor" would get its first audio up to 2 s late, and pulse's latency estimate is wrong
    /// for that long. Suspending and resuming the sink restarts its clock at the latency its
    /// clients ask for now (measured: first period after 9 ms instead of 0.7–2 s).
    func restartSinkClock() throws {
        _ = try pactl(["suspend-sink", "s", "1"])
        _ = try pactl(["suspend-sink", "s", "0"])
    }

    /// On a thread of its own, `afterMicroseconds` from now, freezes the sound server (SIGSTOP to the
    /// pulseaudio this fixture started) for `forMicroseconds`; join the returned thread. A capture
    /// blocks meanwhile and then receives everything the server renders to catch up.
    func freezeServerLater(afterMicroseconds: UInt32, forMicroseconds: UInt32) throws -> pthread_t {
        guard let server = processes.first else { throw FixtureError(description: "no server") }
        let plan = UnsafeMutablePointer<(pid: pid_t, after: UInt32, duration: UInt32)>.allocate(capacity: 1)
        plan.initialize(to: (server, afterMicroseconds, forMicroseconds))
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { context in
            let plan = context!.assumingMemoryBound(to: (pid: pid_t, after: UInt32, duration: UInt32).self)
            let (pid, after, duration) = plan.pointee
            plan.deallocate()
            usleep(after)
            kill(pid, SIGSTOP)
            usleep(duration)
            kill(pid, SIGCONT)
            return nil
        }, plan)
        guard created == 0 else {
            plan.deallocate()
            throw FixtureError(description: "pthread_create failed: \(created)")
        }
        return thread
    }

    /// Runs pactl against this server and returns its standard output (throws on failure).
    @discardableResult
    func pactl(_ arguments: [String]) throws -> String {
        let output = directory.path + "/pactl-\(pactlRuns).out"
        pactlRuns += 1
        let pid = try spawnProcess(executable: pactlPath, arguments: ["pactl", "--server=unix:\(socketPath)"] + arguments,
                                   environment: environment, standardOutput: output)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let text = readText(output)
        guard status == 0 else { throw FixtureError(description: "pactl \(arguments) failed (status \(status)): \(text)") }
        return text
    }

    deinit {
        // Only the processes this fixture started, by pid.
        for pid in processes.reversed() {
            kill(pid, SIGKILL)  // a private throwaway server: no graceful shutdown needed (SIGTERM took ~4 s)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }
}

/// The first 64 KiB of a text file ("" when missing).
func readText(_ path: String) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: 65_536)
    var total = 0
    while total < bytes.count {
        let count = bytes[total...].withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { break }
        total += count
    }
    return String(decoding: bytes.prefix(total), as: UTF8.self)
}

/// A sine tone of `frequency` Hz at 48 kHz.
func tone(frequency: Double, seconds: Double, amplitude: Double, sampleRate: Double = 48_000) -> [Int16] {
    let count = Int(seconds * sampleRate)
    return (0..<count).map { i in Int16(amplitude * sin(2 * Double.pi * frequency * Double(i) / sampleRate)) }
}

/// Goertzel: power of `frequency` in `samples`, normalised by length (amplitude² / 4 for a pure tone).
func goertzelPower(_ samples: ArraySlice<Int16>, frequency: Double, sampleRate: Double = 48_000) -> Double {
    let coefficient = 2 * cos(2 * Double.pi * frequency / sampleRate)
    var previous = 0.0, beforePrevious = 0.0
    for sample in samples {
        let current = Double(sample) + coefficient * previous - beforePrevious
        beforePrevious = previous
        previous = current
    }
    let power = previous * previous + beforePrevious * beforePrevious - coefficient * previous * beforePrevious
    let n = Double(samples.count)
    return power / (n * n)
}

#if canImport(Glibc)
import Glibc
#endif
import RTCBase

/// How a child process ended.
public enum ChildExit: Equatable, Sendable, CustomStringConvertible {
    case exited(code: Int32)
    case killed(signal: Int32)

    public var description: String {
        switch self {
        case let .exited(code): return "exited with status \(code)"
        case let .killed(signal): return "killed by signal \(signal)\(signal == SIGKILL ? " (SIGKILL)" : signal == SIGTERM ? " (SIGTERM)" : signal == SIGSEGV ? " (SIGSEGV)" : "")"
        }
    }
}

public struct ChildProcessError: Error, Equatable, CustomStringConvertible {
    public let operation: String
    public let errno: Int32
    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}

/// A program run through `/bin/sh -c`, its stdout and stderr read through pipes by its owner (one
/// thread), stdin from /dev/null. The child gets its own process group, so stopping it stops what
/// the shell started too, and default signal handling (rtcam ignores SIGPIPE; a child writing to a
/// reader that went away should die of it). The owner must `stop()` it; `deinit` does if not.
public final class ChildProcess {
    public let pid: pid_t
    private var outputDescriptor: Int32
    private var errorDescriptor: Int32
    public private(set) var exit: ChildExit?

    private init(pid: pid_t, output: Int32, errors: Int32) {
        self.pid = pid
        outputDescriptor = output
        errorDescriptor = errors
    }

    deinit {
        if exit == nil { _ = stop(grace: .milliseconds(200)) }
        closeDescriptors()
    }

    /// Starts `/bin/sh -c command` with the daemon's environment.
    public static func startShell(_ command: String) throws(ChildProcessError) -> ChildProcess {
        var output: [Int32] = [-1, -1]
        var errors: [Int32] = [-1, -1]
        // pipe2 is not visible to Swift; close-on-exec right after (the parent keeps no end in a child).
        guard pipe(&output) == 0 else { throw ChildProcessError(operation: "pipe", errno: errno) }
        guard pipe(&errors) == 0 else {
            let saved = errno
            close(output[0]); close(output[1])
            throw ChildProcessError(operation: "pipe", errno: saved)
        }
        for descriptor in output + errors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)   // dup2 clears close-on-exec
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        var noneBlocked = sigset_t()
        sigemptyset(&noneBlocked)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &noneBlocked)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var pid: pid_t = 0
        let arguments = ["/bin/sh", "-c", command]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let result = posix_spawn(&pid, "/bin/sh", &actions, &attributes, &argv, environ)
        close(output[1])
        close(errors[1])
        guard result == 0 else {
            close(output[0]); close(errors[0])
            throw ChildProcessError(operation: "posix_spawn /bin/sh", errno: result)
        }
        for descriptor in [output[0], errors[0]] {
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        }
        return ChildProcess(pid: pid, output: output[0], errors: errors[0])
    }

    public struct Readiness: Equatable, Sendable {
        /// stdout has bytes or reached its end (a read tells which).
        public var output = false
        /// stderr has bytes or reached its end.
        public var errors = false
    }

    /// Waits until stdout or stderr can be read, at most `timeout`.
    public func waitReadable(timeout: Duration) -> Readiness {
        var descriptors = [pollfd(fd: outputDescriptor, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: errorDescriptor, events: Int16(POLLIN), revents: 0)]
        let milliseconds = Int32(clamping: max(0, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        guard Glibc.poll(&descriptors, 2, milliseconds) > 0 else { return Readiness() }
        let ready = Int16(POLLIN | POLLHUP | POLLERR)
        return Readiness(output: descriptors[0].revents & ready != 0, errors: descriptors[1].revents & ready != 0)
    }

    public enum ReadResult: Equatable, Sendable {
        case bytes(Int)
        case wouldBlock
        case endOfStream
    }

    /// Reads what stdout has into `buffer`.
    public func readOutput(into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        Self.read(outputDescriptor, into: buffer)
    }

    /// Reads what stderr has into `buffer`.
    public func readErrors(into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        Self.read(errorDescriptor, into: buffer)
    }

    private static func read(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        guard descriptor >= 0, let base = buffer.baseAddress else { return .endOfStream }
        while true {
            let count = Glibc.read(descriptor, base, buffer.count)
            if count > 0 { return .bytes(count) }
            if count == 0 { return .endOfStream }
            if errno == EINTR { continue }
            return errno == EAGAIN ? .wouldBlock : .endOfStream
        }
    }

    /// Stops watching stderr (the program closed it): waitReadable then looks at stdout only.
    public func closeErrors() {
        if errorDescriptor >= 0 { close(errorDescriptor); errorDescriptor = -1 }
    }

    /// Whether the child ended (reaped without waiting).
    public func exitIfEnded() -> ChildExit? {
        if exit == nil { reap(options: WNOHANG) }
        return exit
    }

    /// Stops the child: SIGTERM to its process group, SIGKILL after `grace`; waits for it.
    @discardableResult
    public func stop(grace: Duration = .seconds(1)) -> ChildExit {
        if let exit { return exit }
        kill(-pid, SIGTERM)
        let deadline = MonotonicClock.now() + grace
        while exit == nil, MonotonicClock.now() < deadline {
            reap(options: WNOHANG)
            if exit == nil { usleep(10_000) }
        }
        if exit == nil {
            kill(-pid, SIGKILL)
            reap(options: 0)
        }
        kill(-pid, SIGKILL)   // what the shell started and left behind in the group
        closeDescriptors()
        return exit ?? .killed(signal: SIGKILL)
    }

    private func reap(options: Int32) {
        var status: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(pid, &status, options) } while result < 0 && errno == EINTR
        guard result == pid else {
            if result < 0 { exit = .exited(code: -1) }   // ECHILD: someone else reaped it
            return
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG spelled out: glibc's macros do not reach Swift.
        if status & 0x7F == 0 {
            exit = .exited(code: (status >> 8) & 0xFF)
        } else {
            exit = .killed(signal: status & 0x7F)
        }
    }

    private func closeDescriptors() {
        if outputDescriptor >= 0 { close(outputDescriptor); outputDescriptor = -1 }
        if errorDescriptor >= 0 { close(errorDescriptor); errorDescriptor = -1 }
    }
}

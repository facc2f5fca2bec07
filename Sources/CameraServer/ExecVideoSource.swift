#if canImport(Glibc)
import Glibc
#endif
import Logging
import MediaSources
import RTCBase
import SystemSupport

/// When the program is (re)started, and why it is stopped: pure, on the caller's clock, so every
/// rule is tested without a process. Restarts after a failure back off (0.5 s doubling to 10 s; a
/// program that ran 30 s starts again at 0.5 s). A keyframe a viewer asked for that the program's
/// periodic IDRs have not brought within `keyframeWait` restarts it (every H.264 encoder begins with
/// an IDR), at most once per `minimumRestartInterval`.
struct ExecRestartPolicy: Sendable {
    var firstDelay: Duration = .milliseconds(500)
    var maximumDelay: Duration = .seconds(10)
    var healthyRun: Duration = .seconds(30)
    var keyframeWait: Duration = .milliseconds(1500)
    var minimumRestartInterval: Duration = .seconds(5)
    /// A running program that gave no picture for this long is restarted (stuck, or not H.264).
    var pictureTimeout: Duration = .seconds(10)

    private(set) var failures = 0
    private(set) var startedAt: MonotonicTime?
    private(set) var nextStart: MonotonicTime?
    private var lastPicture: MonotonicTime?
    private var keyframeAskedAt: MonotonicTime?

    init() {}

    enum Decision: Equatable {
        case keepRunning
        case restart(reason: String)
    }

    /// The program was started.
    mutating func started(at now: MonotonicTime) {
        startedAt = now
        lastPicture = nil
        nextStart = nil
    }

    /// The program ended or was stopped because of a problem: when it may start again.
    mutating func failed(at now: MonotonicTime) -> MonotonicTime {
        if let startedAt, now - startedAt >= healthyRun { failures = 0 }
        let delay = min(maximumDelay, firstDelay * (1 << min(failures, 16)))
        failures += 1
        startedAt = nil
        let next = now + delay
        nextStart = next
        return next
    }

    /// Stopped on purpose (nobody watches, new settings): the next start is immediate.
    mutating func stoppedOnPurpose() {
        startedAt = nil
        nextStart = nil
        keyframeAskedAt = nil
    }

    mutating func picture(isKeyframe: Bool, at now: MonotonicTime) {
        lastPicture = now
        if isKeyframe { keyframeAskedAt = nil }
    }

    mutating func keyframeRequested(at now: MonotonicTime) {
        if keyframeAskedAt == nil { keyframeAskedAt = now }
    }

    /// What to do with the running program now.
    mutating func check(at now: MonotonicTime) -> Decision {
        guard let startedAt else { return .keepRunning }
        if now - (lastPicture ?? startedAt) >= pictureTimeout {
            return .restart(reason: "no H.264 picture for \(pictureTimeout)")
        }
        if let asked = keyframeAskedAt, now - asked >= keyframeWait, now - startedAt >= minimumRestartInterval {
            keyframeAskedAt = nil
            return .restart(reason: "a viewer needs a keyframe and none came for \(keyframeWait)")
        }
        return .keepRunning
    }
}

/// Runs the exec source's program while someone watches (stopped `idleRelease` after the last
/// viewer, so a Pi 5 encoding in software rests), cuts its stdout into access units, puts SPS/PPS
/// in front of every IDR (CameraH264Stream) and restarts it as ExecRestartPolicy says, logging why.
struct ExecProducer: VideoProducer {
    let template: String
    let width: Int
    let height: Int
    /// The SPS/PPS the probe at start saw (the answer's profile-level-id came from them).
    let probedStream: CameraH264Stream
    let configuration: CurrentConfiguration
    /// How long the stream may be silent before the picture read so far is taken as complete.
    var quietGap: Duration = .milliseconds(12)

    var description: String { "exec:\(template) (passthrough)" }

    /// Starts the program long enough to read its SPS and PPS (at most `timeout`): the SDP answer
    /// names the stream's own profile-level-id. nil (with the reason) if none came.
    static func probe(_ template: String, configuration: MediaConfiguration, timeout: Duration,
                      logger: Logger) -> (stream: CameraH264Stream, problem: String?) {
        var stream = CameraH264Stream()
        let command = ExecCommand.expand(template, width: configuration.width, height: configuration.height,
                                         framesPerSecond: configuration.framesPerSecond, bitrateKbps: configuration.bitrateKbps)
        let child: ChildProcess
        do {
            child = try ChildProcess.startShell(command)
        } catch {
            return (stream, "cannot start the program: \(error)")
        }
        var reader = ProgramOutputReader()
        var splitter = AccessUnitSplitter()
        let deadline = MonotonicClock.now() + timeout
        while stream.parsedSequenceParameterSet == nil || stream.pictureParameterSet == nil {
            let now = MonotonicClock.now()
            guard now < deadline else { break }
            let units = reader.read(child, waiting: min(.milliseconds(100), deadline - now), splitter: &splitter)
            for unit in units {
                unit.withUnsafeBytes { _ = stream.frame(fromBuffer: $0, captureTime: now, width: 0, height: 0) }
            }
            if reader.endOfStream { break }
        }
        let exit = child.stop(grace: .milliseconds(500))
        if stream.parsedSequenceParameterSet != nil, stream.pictureParameterSet != nil { return (stream, nil) }
        let said = reader.lastErrorLine.map { ": \($0)" } ?? ""
        if reader.endOfStream { return (stream, "the program \(exit) before any SPS/PPS\(said)") }
        return (stream, "no SPS/PPS from the program in \(timeout)\(said)")
    }

    func run(_ controls: MediaThreadControls, deliver: (EncodedVideoFrame) -> Void) {
        controls.setRunningEncoder("passthrough (exec)")
        controls.stills.setUnavailable("the source is a program's H.264 played as it is (exec, passthrough): there are no raw pictures to make a JPEG from (rtcam has no H.264 decoder)")
        var policy = ExecRestartPolicy()
        var stream = probedStream
        var splitter = AccessUnitSplitter()
        var reader = ProgramOutputReader()
        var child: ChildProcess?
        var lastWatched = MonotonicClock.now()
        var picturesThisRun = 0
        var startedBefore = false

        func stopChild(_ reason: String?, at now: MonotonicTime) {
            guard let running = child else { return }
            let exit = running.stop()
            child = nil
            splitter.reset()
            if let reason {
                let next = policy.failed(at: now)
                let said = reader.lastErrorLine.map { "; it said: \($0)" } ?? ""
                controls.setSourceProblem("\(reason) (\(exit))\(said)")
                controls.logger.warning("exec source: \(reason) (\(exit), \(picturesThisRun) pictures)\(said); starting again in \(next - now)")
            } else {
                policy.stoppedOnPurpose()
                controls.logger.info("exec source stopped: nobody watches (\(exit))")
            }
            reader = ProgramOutputReader()
        }

        while controls.isRunning {
            let now = MonotonicClock.now()
            if controls.isWatched { lastWatched = now }
            guard let running = child else {
                guard controls.isWatched else {
                    controls.sleepWhileUnwatched()
                    continue
                }
                if let next = policy.nextStart, now < next {
                    DedicatedThread.sleep(until: min(next, now + .milliseconds(100)).nanoseconds)
                    continue
                }
                let settings = configuration()
                let command = ExecCommand.expand(template, width: settings.width, height: settings.height,
                                                 framesPerSecond: settings.framesPerSecond, bitrateKbps: settings.bitrateKbps)
                do {
                    child = try ChildProcess.startShell(command)
                    if startedBefore { controls.countSourceRestart() }
                    startedBefore = true
                    policy.started(at: now)
                    picturesThisRun = 0
                    _ = controls.takeBitrateChange()   // the settings just read are the ones in effect
                    controls.logger.info("exec source started (pid \(child!.pid)): \(command)")
                } catch {
                    let next = policy.failed(at: now)
                    controls.setSourceProblem("cannot start the program: \(error)")
                    controls.logger.error("exec source: \(error); trying again in \(next - now)")
                }
                continue
            }

            if !controls.isWatched, now - lastWatched >= controls.idleRelease {
                stopChild(nil, at: now)
                continue
            }
            if controls.keyframeIsRequested { policy.keyframeRequested(at: now) }
            if controls.takeBitrateChange() != nil, ExecCommand.usesBitrate(template) {
                running.stop()   // started again at once with the new {bitrate}
                child = nil
                splitter.reset()
                policy.stoppedOnPurpose()
                continue
            }
            if case let .restart(reason) = policy.check(at: now) {
                stopChild(reason, at: now)
                continue
            }

            var units = reader.read(running, waiting: quietGap, splitter: &splitter)
            if reader.wentQuiet, let last = splitter.streamWentQuiet() { units.append(last) }
            for unit in units {
                let captured = MonotonicClock.now()
                let frame = unit.withUnsafeBytes {
                    stream.frame(fromBuffer: $0, captureTime: captured, width: width, height: height)
                }
                guard var frame else { continue }
                if let sps = stream.parsedSequenceParameterSet { frame.width = sps.width; frame.height = sps.height }
                picturesThisRun += 1
                if picturesThisRun == 1 { controls.setSourceProblem(nil) }
                policy.picture(isKeyframe: frame.isKeyframe, at: captured)
                guard controls.isWatched else { continue }
                let forced = frame.isKeyframe && controls.takeKeyframeRequest()
                controls.record(frame, forced: forced, at: captured)
                deliver(frame)
            }
            if reader.endOfStream {
                stopChild("the program ended", at: MonotonicClock.now())
            }
        }
        if let child { child.stop() }
    }
}

/// Reads a program's stdout into an AccessUnitSplitter and keeps the last line of its stderr (the
/// reason a program gives when it fails).
struct ProgramOutputReader {
    private var buffer = [UInt8](repeating: 0, count: 64 << 10)
    private var errorTail: [UInt8] = []
    private(set) var endOfStream = false
    /// The last read waited the whole time without any stdout byte.
    private(set) var wentQuiet = false
    var bytesRead = 0

    var lastErrorLine: String? {
        let lines = errorTail.split(separator: 10).map { String(decoding: $0, as: UTF8.self) }
            .filter { !$0.allSatisfy { $0 == " " || $0 == "\r" } }
        return lines.last.map { String($0.prefix(300)) }
    }

    /// Waits up to `waiting` for output, then reads what stdout and stderr have.
    mutating func read(_ child: ChildProcess, waiting: Duration, splitter: inout AccessUnitSplitter) -> [[UInt8]] {
        let ready = child.waitReadable(timeout: waiting)
        wentQuiet = !ready.output && !ready.errors   // the whole wait passed without a byte
        var units: [[UInt8]] = []
        if ready.output {
            // At most 16 reads at a time, so stderr and the policy are looked at between them.
            for _ in 0 ..< 16 {
                let result = buffer.withUnsafeMutableBytes { child.readOutput(into: $0) }
                guard case let .bytes(count) = result else {
                    if result == .endOfStream { endOfStream = true }
                    break
                }
                bytesRead += count
                units += buffer.withUnsafeBytes { splitter.append(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            }
        }
        if ready.errors {
            let result = buffer.withUnsafeMutableBytes { child.readErrors(into: $0) }
            if result == .endOfStream { child.closeErrors() }   // closed stderr: stop watching it
            if case let .bytes(count) = result {
                errorTail += buffer[..<count]
                if errorTail.count > 2048 { errorTail.removeFirst(errorTail.count - 2048) }
            }
        }
        return units
    }
}

#if canImport(Glibc)
import Glibc
#endif
import MediaSources
import RTCBase
import Testing
@testable import CameraServer
import SystemSupport

/// When the exec source's program is started again: on the test's own clock, no process.
@Suite struct ExecRestartPolicyTests {
    static let t0 = MonotonicTime(milliseconds: 1_000_000)

    @Test("failures back off 0.5 s, 1, 2, 4, 8, then 10 s; a program that ran 30 s starts again after 0.5 s")
    func backoff() {
        var policy = ExecRestartPolicy()
        var now = Self.t0
        var delays: [Duration] = []
        for _ in 0 ..< 7 {
            policy.started(at: now)
            now = now + .milliseconds(200)   // dies at once
            let next = policy.failed(at: now)
            delays.append(next - now)
            now = next
        }
        #expect(delays == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(10), .seconds(10)])
        policy.started(at: now)
        now = now + .seconds(31)
        #expect(policy.failed(at: now) - now == .milliseconds(500), "a healthy run forgets the failures")
        policy.stoppedOnPurpose()
        #expect(policy.nextStart == nil, "stopped on purpose (nobody watches): the next start is immediate")
    }

    @Test("a keyframe request the periodic IDRs do not answer within 1.5 s restarts the program, at most every 5 s")
    func keyframeRestart() {
        var policy = ExecRestartPolicy()
        policy.started(at: Self.t0)
        var now = Self.t0
        for _ in 0 ..< 60 {   // 2 s of pictures at 30 fps, no IDR
            now = now + .milliseconds(33)
            policy.picture(isKeyframe: false, at: now)
        }
        policy.keyframeRequested(at: now)
        #expect(policy.check(at: now + .seconds(1)) == .keepRunning)
        // 1.5 s after the request but only 3.5 s after the start: not yet.
        #expect(policy.check(at: now + .milliseconds(1500)) == .keepRunning)
        policy.picture(isKeyframe: false, at: now + .seconds(3))
        guard case .restart = policy.check(at: Self.t0 + .seconds(5)) else {
            Issue.record("no restart 5 s after the start with the request unanswered")
            return
        }
        // A periodic IDR answers a request: no restart.
        var answered = ExecRestartPolicy()
        answered.started(at: Self.t0)
        answered.keyframeRequested(at: Self.t0 + .seconds(6))
        answered.picture(isKeyframe: true, at: Self.t0 + .seconds(7))
        #expect(answered.check(at: Self.t0 + .seconds(9)) == .keepRunning)
    }

    @Test("a program that gives no picture for 10 s is restarted")
    func pictureTimeout() {
        var policy = ExecRestartPolicy()
        policy.started(at: Self.t0)
        #expect(policy.check(at: Self.t0 + .seconds(9)) == .keepRunning)
        guard case .restart = policy.check(at: Self.t0 + .seconds(10)) else {
            Issue.record("no restart after 10 s without a picture")
            return
        }
        policy.picture(isKeyframe: true, at: Self.t0 + .seconds(10))
        #expect(policy.check(at: Self.t0 + .seconds(19)) == .keepRunning)
    }

    @Test("placeholders are filled in; other braces are left for the shell")
    func placeholders() {
        let command = ExecCommand.expand("cam --width {width} --height {height} --framerate {fps} --bitrate {bitrate} -b:v {kbps}k ${HOME} {other}",
                                         width: 1280, height: 720, framesPerSecond: 30, bitrateKbps: 2500)
        #expect(command == "cam --width 1280 --height 720 --framerate 30 --bitrate 2500000 -b:v 2500k ${HOME} {other}")
        #expect(ExecCommand.usesBitrate("x {kbps}") && !ExecCommand.usesBitrate("x {fps}"))
        #expect(!ExecCommand.isAcceptable("") && !ExecCommand.isAcceptable("a\nb") && ExecCommand.isAcceptable("rpicam-vid -o -"))
        #expect(VideoSourceSetting(parsing: "exec:rpicam-vid -t 0 -o -") == .exec(command: "rpicam-vid -t 0 -o -"))
        #expect(VideoSourceSetting(parsing: "exec:") == nil)
        #expect(VideoSourceSetting.exec(command: "a b").description == "exec:a b")
    }
}

/// A real child process: exit status, stderr, and a stop that leaves nothing of its group behind.
@Suite struct ChildProcessTests {
    @Test func exitStatusOutputAndErrors() throws {
        let child = try ChildProcess.startShell("printf 'out'; echo 'why it failed' >&2; exit 3")
        var output: [UInt8] = []
        var errors: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var outputEnded = false
        let deadline = MonotonicClock.now() + .seconds(10)
        while !outputEnded, MonotonicClock.now() < deadline {
            let ready = child.waitReadable(timeout: .milliseconds(100))
            if ready.output {
                switch buffer.withUnsafeMutableBytes({ child.readOutput(into: $0) }) {
                case let .bytes(count): output += buffer[..<count]
                case .endOfStream: outputEnded = true
                case .wouldBlock: break
                }
            }
            if ready.errors, case let .bytes(count) = buffer.withUnsafeMutableBytes({ child.readErrors(into: $0) }) {
                errors += buffer[..<count]
            }
        }
        #expect(String(decoding: output, as: UTF8.self) == "out")
        #expect(String(decoding: errors, as: UTF8.self) == "why it failed\n")
        #expect(child.stop() == .exited(code: 3))
    }

    @Test("stop ends the shell and what it started (its process group), SIGKILL after the grace time")
    func stopEndsTheGroup() throws {
        let child = try ChildProcess.startShell("trap '' TERM; sleep 60 & echo $! >&2; wait")
        var buffer = [UInt8](repeating: 0, count: 64)
        var text = ""
        let deadline = MonotonicClock.now() + .seconds(10)
        while !text.hasSuffix("\n"), MonotonicClock.now() < deadline {
            if child.waitReadable(timeout: .milliseconds(100)).errors,
               case let .bytes(count) = buffer.withUnsafeMutableBytes({ child.readErrors(into: $0) }) {
                text += String(decoding: buffer[..<count], as: UTF8.self)
            }
        }
        let sleeper = try #require(pid_t(text.dropLast()))
        #expect(child.exitIfEnded() == nil)
        let exit = child.stop(grace: .milliseconds(300))
        #expect(exit == .killed(signal: SIGKILL), "the shell ignored SIGTERM: \(exit)")
        // The background sleep got the group's SIGTERM (it does not ignore it) or SIGKILL: it is
        // gone or a zombie (its new parent may be slow to reap it).
        func ended(_ pid: pid_t) -> Bool {
            guard let file = fopen("/proc/\(pid)/stat", "r") else { return true }
            defer { fclose(file) }
            var line = [CChar](repeating: 0, count: 512)
            guard fgets(&line, Int32(line.count), file) != nil else { return true }
            let text = String(cString: line)
            guard let close = text.lastIndex(of: ")") else { return true }
            return text[text.index(close, offsetBy: 2)] == "Z"
        }
        var gone = false
        for _ in 0 ..< 100 where !gone {
            gone = ended(sleeper)
            if !gone { usleep(10_000) }
        }
        #expect(gone, "the shell's child \(sleeper) outlived stop()")
    }
}

/// The exec source end to end, with FFmpeg as the program (as rpicam-vid would be on a Pi).
@Suite(.serialized) struct ExecVideoSourceTests {
    static func configuration(_ command: String) -> MediaConfiguration {
        var configuration = MediaConfiguration()
        configuration.video = .exec(command: command)
        configuration.audio = .none
        configuration.width = 320
        configuration.height = 240
        configuration.framesPerSecond = 30
        return configuration
    }

    static var ffmpeg: String? {
        for directory in ["/usr/bin", "/usr/local/bin"] where access(directory + "/ffmpeg", X_OK) == 0 { return directory + "/ffmpeg" }
        return nil
    }

    static func ffmpegCommand(_ extra: String = "", gop: Int = 15) -> String {
        "\(ffmpeg ?? "ffmpeg") -hide_banner -loglevel error -re -f lavfi -i testsrc2=size={width}x{height}:rate={fps} \(extra) " +
            "-c:v libx264 -preset ultrafast -tune zerolatency -profile:v baseline -g \(gop) -b:v {kbps}k -f h264 -"
    }

    @Test("FFmpeg's H.264 passes through: the answer names its SPS's profile, frames arrive at its rate, the first is an IDR")
    func ffmpegStreamPassesThrough() throws {
        try #require(Self.ffmpeg != nil, "ffmpeg is installed by make test-deps")
        let pipeline = try MediaPipeline(configuration: Self.configuration(Self.ffmpegCommand()), logger: .init(label: "test"),
                                         idleRelease: .seconds(2))
        #expect(pipeline.h264ProfileLevelID.hasPrefix("42"), "Constrained Baseline from the probe: \(pipeline.h264ProfileLevelID)")
        #expect(pipeline.width == 320 && pipeline.height == 240)
        #expect(pipeline.encoderDescription == "passthrough")
        let received = RecordingFrameSink()
        pipeline.start(sink: received, generation: 0)
        defer { pipeline.stop() }
        pipeline.setViewersPresent(true)
        #expect(MediaPipelineIdleReleaseTests.wait(seconds: 15) { received.videoCount >= 45 })
        #expect(received.keyframe(at: 0), "the program's first picture is an IDR")
        let status = pipeline.status()
        #expect(status.sourceProblem == nil)
        #expect(status.framesEncoded >= 45)
    }

    @Test("a program that ends is started again (backoff, reason in status); frames resume, each run starting with an IDR")
    func endingProgramIsRestarted() throws {
        try #require(Self.ffmpeg != nil, "ffmpeg is installed by make test-deps")
        let pipeline = try MediaPipeline(configuration: Self.configuration(Self.ffmpegCommand("-t 1")), logger: .init(label: "test"),
                                         idleRelease: .seconds(5))
        let received = RecordingFrameSink()
        pipeline.start(sink: received, generation: 0)
        defer { pipeline.stop() }
        pipeline.setViewersPresent(true)
        #expect(MediaPipelineIdleReleaseTests.wait(seconds: 20) { pipeline.status().sourceRestarts >= 2 && received.videoCount >= 60 })
        let status = pipeline.status()
        #expect(status.sourceRestarts >= 2)
        let keyframes = (0 ..< received.videoCount).filter { received.keyframe(at: $0) }.count
        #expect(keyframes >= 2, "every run begins with an IDR: \(keyframes)")
    }

    @Test("a program writing garbage, or nothing, gives no frame, a reason, and restarts with backoff; the daemon goes on")
    func garbageProgram() throws {
        let pipeline = try MediaPipeline(configuration: Self.configuration("head -c 2000000 /dev/urandom"), logger: .init(label: "test"),
                                         idleRelease: .seconds(5))
        #expect(pipeline.h264ProfileLevelID == H264Level.constrainedBaselineProfileLevelID(width: 320, height: 240, framesPerSecond: 30),
                "no SPS: the configured size's Constrained Baseline level")
        let received = RecordingFrameSink()
        pipeline.start(sink: received, generation: 0)
        defer { pipeline.stop() }
        pipeline.setViewersPresent(true)
        #expect(MediaPipelineIdleReleaseTests.wait(seconds: 10) { pipeline.status().sourceRestarts >= 1 })
        let status = pipeline.status()
        #expect(received.videoCount == 0)
        #expect(status.sourceProblem?.containsText("the program ended") == true, "\(status.sourceProblem ?? "nil")")

        let missing = try MediaPipeline(configuration: Self.configuration("/nonexistent/rpicam-vid -o -"), logger: .init(label: "test"))
        let sink = RecordingFrameSink()
        missing.start(sink: sink, generation: 0)
        defer { missing.stop() }
        missing.setViewersPresent(true)
        #expect(MediaPipelineIdleReleaseTests.wait(seconds: 5) { missing.status().sourceProblem?.containsText("not found") == true },
                "the shell's reason reaches the status: \(missing.status().sourceProblem ?? "nil")")
    }
}

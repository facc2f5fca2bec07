@testable import CameraServer
import MediaSources
import RTCBase
import Testing

/// The reduced encoding's shape (issue 24): half the full size each side, half its rate from
/// 20 fps, and as few new x264s (each a new IDR on the slow link) as the CPU adaptation's steps allow.
@Suite struct ReducedLayerStageTests {
    @Test func halfTheSizeAndFromTwentyFramesASecondHalfTheRate() {
        let size = ReducedLayerStage.size(ofFull: EncodedFormat(width: 1280, height: 720, framesPerSecond: 30))
        #expect(size.width == 640 && size.height == 360)
        #expect(ReducedLayerStage.size(ofFull: EncodedFormat(width: 426, height: 240, framesPerSecond: 30)).width == 212)
        #expect(ReducedLayerStage.size(ofFull: EncodedFormat(width: 96, height: 54, framesPerSecond: 30)).height == 36)
        #expect(ReducedLayerStage.frameInterval(ofFull: 30) == 2)
        #expect(ReducedLayerStage.frameInterval(ofFull: 20) == 2)
        #expect(ReducedLayerStage.frameInterval(ofFull: 15) == 1, "never under 10 fps")
    }

    /// The full encoding's CPU steps on the virtual clock, one every 10 s (as the adaptation's
    /// hold allows at most), 1280x720@30 → 852 → 640 → 426 → 320 wide and back up; the reduced
    /// one's format asked every frame.
    static func follow(fullWidths: [Int], startingBeside first: Int = 1280)
        -> (reopened: [(width: Int, afterStep: Duration)], widthBeforeNextStep: [Int]) {
        var sizing = ReducedLayerSizing()
        let frame = Duration.nanoseconds(1_000_000_000 / 30)
        var now = MonotonicTime(milliseconds: 1_000)
        func format(_ width: Int) -> EncodedFormat { EncodedFormat(width: width, height: width * 9 / 16 & ~1, framesPerSecond: 30) }
        var running = sizing.format(running: nil, full: format(first), at: now)
        var reopened: [(Int, Duration)] = []
        var widthBeforeNextStep: [Int] = []
        // Its periodic IDR every 2 s (60 full frames), counted from its last new encoder.
        var sinceKeyframe = 0
        for width in fullWidths {
            let stepAt = now
            sizing.fullEncoderReplaced(at: now)
            for _ in 0 ..< 300 {   // 10 s of frames
                let wanted = sizing.format(running: running, full: format(width), keyframeDue: sinceKeyframe % 60 == 59, at: now)
                sinceKeyframe += 1
                if wanted != running {
                    reopened.append((wanted.width, now - stepAt))
                    running = wanted
                    sinceKeyframe = 0
                }
                #expect(running.framesPerSecond == 15)
                now = now + frame
            }
            widthBeforeNextStep.append(running.width)
        }
        return (reopened, widthBeforeNextStep)
    }

    @Test func cpuStepsDownReopenItOnlyWhenItWouldNoLongerBeSmallerAndStepsUpBringItBackToHalf() {
        let followed = Self.follow(fullWidths: [852, 640, 426, 320, 426, 640, 852, 1280])
        // Down: kept beside 852 (640 ≤ 4/5 of it), new at 320 beside 640, kept beside 426, new at
        // 160 beside 320. Up: half the full picture again at every step (it was kept at 426
        // beside 1280 before: a third of it, until something restarted it).
        #expect(followed.reopened.map(\.width) == [320, 160, 212, 320, 426, 640])
        #expect(followed.widthBeforeNextStep == [640, 320, 320, 160, 212, 320, 426, 640])
        // Never in the frame interval of the full encoder's new IDR: shrinking (for the CPU) the
        // stagger after it, within a frame; growing at its next periodic IDR, within 2 s.
        for (index, reopen) in followed.reopened.enumerated() {
            let latest = index < 2 ? ReducedLayerSizing.stagger + .milliseconds(34) : .seconds(2) + .milliseconds(34)
            #expect(reopen.afterStep >= ReducedLayerSizing.stagger && reopen.afterStep < latest,
                    "reopened at \(reopen.width) \(reopen.afterStep) after the full step")
        }
    }

    @Test func theFirstReducedEncoderDoesNotWaitAndARateStepReopensIt() {
        var sizing = ReducedLayerSizing()
        let now = MonotonicTime(milliseconds: 5_000)
        sizing.fullEncoderReplaced(at: now)
        let full = EncodedFormat(width: 1280, height: 720, framesPerSecond: 30)
        // A slow viewer waits for the first one: made at once, even in a step's frame.
        #expect(sizing.format(running: nil, full: full, at: now) == EncodedFormat(width: 640, height: 360, framesPerSecond: 15))
        // The full rate stepped to 15 fps (degradation framerate): the reduced one takes every picture.
        let slower = EncodedFormat(width: 1280, height: 720, framesPerSecond: 15)
        let running = EncodedFormat(width: 640, height: 360, framesPerSecond: 15)
        #expect(sizing.format(running: running, full: slower, at: now) == running)
        let halfRate = EncodedFormat(width: 640, height: 360, framesPerSecond: 7)
        #expect(sizing.format(running: halfRate, full: slower, at: now + .milliseconds(100)) == halfRate, "waits for the stagger")
        #expect(sizing.format(running: halfRate, full: slower, keyframeDue: false, at: now + ReducedLayerSizing.stagger) == running,
                "a rate change does not wait for the IDR")
    }

    @Test func growingWaitsForAnIDRItWouldSendAnywayShrinkingDoesNot() {
        var sizing = ReducedLayerSizing()
        let now = MonotonicTime(milliseconds: 5_000)
        sizing.fullEncoderReplaced(at: now)
        let later = now + ReducedLayerSizing.stagger
        let small = EncodedFormat(width: 320, height: 180, framesPerSecond: 15)
        let half = EncodedFormat(width: 640, height: 360, framesPerSecond: 15)
        let full = EncodedFormat(width: 1280, height: 720, framesPerSecond: 30)
        #expect(sizing.format(running: small, full: full, keyframeDue: false, at: later) == small)
        #expect(sizing.format(running: small, full: full, keyframeDue: true, at: later) == half)
        // Beside a 640 picture a 640 reduced one is no reduction: at once (after the stagger).
        let stepped = EncodedFormat(width: 640, height: 360, framesPerSecond: 30)
        #expect(sizing.format(running: half, full: stepped, keyframeDue: false, at: later) == small)
    }
}

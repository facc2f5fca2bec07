@testable import CameraServer
import MediaSources
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

    @Test func cpuStepsDownReopenItOnlyWhenItWouldNoLongerBeSmaller() {
        // The full encoding steps 1280 → 852 → 640 → 426 → 320 wide, the reduced one starting at 640.
        var running = 640
        var reopened: [Int] = []
        for full in [1280, 852, 640, 426, 320, 426, 640, 852, 1280] {
            let wanted = full / 4 * 2
            if !ReducedLayerStage.keeps(runningWidth: running, fullWidth: full, wantedWidth: wanted) {
                running = wanted
                reopened.append(wanted)
            }
        }
        // Down: kept beside 852 (640 ≤ 4/5 of it), new at 320 beside 640, kept beside 426, new at 160
        // beside 320. Up: kept while at least half what is wanted: new at 426 beside 852, then kept
        // beside 1280 (426 is more than half the 640 wanted).
        #expect(reopened == [320, 160, 426])
    }
}

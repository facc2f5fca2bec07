@testable import CameraServer
import Logging
import MediaSources
import RTCBase
import Testing

/// The full x264 encoder's periodic IDR waits while a viewer's link is in a congestion episode
/// (issue 24: an IDR made into a draining link froze the picture 500 ms instead of 290); keyframes
/// asked for (a join, PLI, FIR) stay at once, and intra refresh keeps x264's own sweep. The real
/// X264Stage, fed pictures at 30 fps on a virtual clock (x264 runs as fast as it can).
@Suite struct PeriodicKeyframeHoldTests {
    /// Runs `count` pictures with a 1 s keyframe interval; `congested` and `asked` by picture index.
    /// Returns the indices of the IDRs the viewers got.
    static func keyframes(intraRefresh: Bool = false, count: Int = 150, congested: (Int) -> Bool, asked: Set<Int> = []) throws -> [Int] {
        var configuration = MediaConfiguration()
        configuration.width = 320
        configuration.height = 240
        configuration.framesPerSecond = 30
        configuration.bitrateKbps = 500
        configuration.keyframeIntervalSeconds = 1
        configuration.intraRefresh = intraRefresh
        let frozen = configuration
        let controls = MediaThreadControls(logger: Logger(label: "test"), idleRelease: .seconds(10), idleWakeInterval: .seconds(1))
        controls.setWatched(true)
        var stage = X264Stage(width: 320, height: 240, profileLevelID: "42e01f", idleRelease: .seconds(10),
                              adaptationThresholds: .onlyAskedSteps, configuration: { frozen })
        let source = try TestPatternSource(width: 320, height: 240)
        let start = MonotonicTime(seconds: 100)
        var idrs: [Int] = []
        for index in 0 ..< count {
            let now = start + .nanoseconds(Int64(index) * 1_000_000_000 / 30)
            controls.setViewerLinkCongested(congested(index))
            if asked.contains(index) { controls.requestKeyframe() }
            stage.encode(source.frame(at: now, index: UInt64(index)), at: now, controls) { encoded in
                if encoded.isKeyframe { idrs.append(index) }
            }
        }
        return idrs
    }

    @Test func thePeriodicIDRWaitsForACongestedLinkButAnAskedOneDoesNot() throws {
        #expect(try Self.keyframes(congested: { _ in false }) == [0, 30, 60, 90, 120])
        // Congested from picture 40 to 74: the IDR due at 60 comes at 75, the next 30 later.
        #expect(try Self.keyframes(congested: { (40 ..< 75).contains($0) }) == [0, 30, 75, 105, 135])
        // A PLI at 50 while congested is an IDR at once; the next periodic one (80) waits until 100.
        #expect(try Self.keyframes(congested: { (40 ..< 100).contains($0) }, asked: [50]) == [0, 30, 50, 100, 130])
        // A link congested for good still gets one 4 s (120 pictures) after it was due.
        #expect(try Self.keyframes(count: 160, congested: { $0 >= 20 }) == [0, 30 + 120])
    }

    @Test func intraRefreshIsUnaffected() throws {
        // Only the first picture and the asked ones are IDRs, congested or not.
        #expect(try Self.keyframes(intraRefresh: true, congested: { (40 ..< 75).contains($0) }, asked: [50]) == [0, 50])
        #expect(try Self.keyframes(intraRefresh: true, congested: { _ in false }) == [0])
    }
}

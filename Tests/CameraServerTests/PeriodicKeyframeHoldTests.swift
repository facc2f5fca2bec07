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
        try run(intraRefresh: intraRefresh, count: count, congested: congested, asked: asked).idrs
    }

    /// The same, with what the media status then shows of the holds (/api/status, /metrics).
    static func run(intraRefresh: Bool = false, count: Int = 150, congested: (Int) -> Bool,
                    asked: Set<Int> = []) throws -> (idrs: [Int], held: Int, longestHold: Duration?) {
        let outcome = try runBothLayers(intraRefresh: intraRefresh, count: count, congested: congested, asked: asked)
        return (outcome.idrs, outcome.held, outcome.longestHold)
    }

    /// The same; with `reducedKbps` the reduced encoding runs beside the full one from the first
    /// picture (every second picture at 30 fps), and its IDRs (by the full picture's index) and
    /// holds come back too. `congested`: a full-layer viewer's link, `reducedCongested`: a
    /// reduced-layer viewer's; `askedReduced`: keyframe requests of the reduced layer.
    static func runBothLayers(intraRefresh: Bool = false, count: Int = 150, congested: (Int) -> Bool, asked: Set<Int> = [],
                              reducedKbps: Int? = nil, reducedCongested: (Int) -> Bool = { _ in false },
                              askedReduced: Set<Int> = [])
        throws -> (idrs: [Int], held: Int, longestHold: Duration?, reducedIDRs: [Int], reducedHeld: Int, reducedFrames: Int) {
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
        if let reducedKbps { controls.setReducedLayer(kbps: reducedKbps) }
        var stage = X264Stage(width: 320, height: 240, profileLevelID: "42e01f", idleRelease: .seconds(10),
                              adaptationThresholds: .onlyAskedSteps, configuration: { frozen })
        let source = try TestPatternSource(width: 320, height: 240)
        let start = MonotonicTime(seconds: 100)
        var idrs: [Int] = [], reducedIDRs: [Int] = [], reducedFrames = 0
        for index in 0 ..< count {
            let now = start + .nanoseconds(Int64(index) * 1_000_000_000 / 30)
            controls.setViewerLinksCongested(full: congested(index), reduced: reducedCongested(index))
            if asked.contains(index) { controls.requestKeyframe() }
            if askedReduced.contains(index) { controls.requestReducedKeyframe() }
            stage.encode(source.frame(at: now, index: UInt64(index)), at: now, controls) { encoded in
                if encoded.layer == .reduced {
                    reducedFrames += 1
                    if encoded.isKeyframe { reducedIDRs.append(index) }
                } else if encoded.isKeyframe {
                    idrs.append(index)
                }
            }
        }
        let counters = controls.counters.withLock { $0 }
        return (idrs, counters.periodicKeyframesHeld, counters.longestKeyframeHold, reducedIDRs,
                counters.reducedLayerKeyframesHeld, reducedFrames)
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

    /// What /api/status's bitrateControl (`periodicKeyframesHeld`, `longestKeyframeHoldMs`) and
    /// /metrics read: each hold counted once however many pictures it lasts, the wait to the IDR that
    /// ended it (the held one, or one asked for meanwhile).
    @Test func theHoldsAndTheLongestWaitReachTheMediaStatus() throws {
        func wait(from due: Int, to made: Int) -> Duration {   // the run's clock: picture i at i/30 s
            .nanoseconds(Int64(made) * 1_000_000_000 / 30 - Int64(due) * 1_000_000_000 / 30)
        }
        let calm = try Self.run(congested: { _ in false })
        #expect(calm.held == 0 && calm.longestHold == nil)
        // Held from 60 to 75 (15 pictures), and from 105 to 135 (30): two holds, the longest 1 s.
        let twice = try Self.run(congested: { (40 ..< 75).contains($0) || (100 ..< 135).contains($0) })
        #expect(twice.idrs == [0, 30, 75, 135])
        #expect(twice.held == 2)
        #expect(twice.longestHold == wait(from: 105, to: 135))
        // Due at 60, held; a PLI at 70 ends the wait (10 pictures).
        let asked = try Self.run(congested: { (40 ..< 100).contains($0) }, asked: [70])
        #expect(asked.idrs == [0, 30, 70, 100, 130])
        #expect(asked.held == 1)   // the next one is due at 100, when the link is no longer congested
        #expect(asked.longestHold == wait(from: 60, to: 70))
        // A link congested for good: the one hold (due at 30) lasts KeyframeSchedule's 4 s.
        let forGood = try Self.run(count: 160, congested: { $0 >= 20 })
        #expect(forGood.held == 1 && forGood.longestHold == .seconds(4))
        // Intra refresh schedules no IDR: nothing is held.
        #expect(try Self.run(intraRefresh: true, congested: { (40 ..< 75).contains($0) }).held == 0)
    }

    /// The reduced encoding (the slow links' layer) holds its periodic IDR as the full one does: an
    /// IDR made while a slow viewer's link drains after a rate step waits behind that queue.
    @Test func theReducedLayersPeriodicIDRWaitsForACongestedLinkToo() throws {
        // Every second picture at 30 fps, an IDR every 15 of its own (30 full pictures).
        let calm = try Self.runBothLayers(congested: { _ in false }, reducedKbps: 200)
        #expect(calm.reducedFrames == 75)
        #expect(calm.reducedIDRs == [0, 30, 60, 90, 120])
        #expect(calm.reducedHeld == 0)
        // A reduced-layer viewer's link congested from picture 40 to 74: its IDR due at 60 waits
        // and comes with its next picture after (76, an even one), the next 30 full pictures later;
        // the full layer's viewers' links are not congested, and its IDRs do not wait.
        let held = try Self.runBothLayers(congested: { _ in false }, reducedKbps: 200,
                                          reducedCongested: { (40 ..< 75).contains($0) })
        #expect(held.idrs == [0, 30, 60, 90, 120])
        #expect(held.reducedIDRs == [0, 30, 76, 106, 136])
        #expect(held.reducedHeld == 1 && held.held == 0)
        // A full-layer viewer's congested link holds the full layer's IDR, not the reduced one's.
        let fullOnly = try Self.runBothLayers(congested: { (40 ..< 75).contains($0) }, reducedKbps: 200)
        #expect(fullOnly.idrs == [0, 30, 75, 105, 135])
        #expect(fullOnly.reducedIDRs == [0, 30, 60, 90, 120])
        #expect(fullOnly.reducedHeld == 0 && fullOnly.held == 1)
        // A viewer switching to it (a keyframe request) while congested gets one at once.
        let asked = try Self.runBothLayers(congested: { _ in false }, reducedKbps: 200,
                                           reducedCongested: { (40 ..< 100).contains($0) }, askedReduced: [50])
        #expect(asked.reducedIDRs == [0, 30, 50, 100, 130])
        // A link congested for good still gets one 4 s (120 pictures) after it was due.
        let forGood = try Self.runBothLayers(count: 160, congested: { _ in false }, reducedKbps: 200,
                                             reducedCongested: { $0 >= 20 })
        #expect(forGood.reducedIDRs == [0, 150])
    }

    @Test func intraRefreshIsUnaffected() throws {
        // Only the first picture and the asked ones are IDRs, congested or not.
        #expect(try Self.keyframes(intraRefresh: true, congested: { (40 ..< 75).contains($0) }, asked: [50]) == [0, 50])
        #expect(try Self.keyframes(intraRefresh: true, congested: { _ in false }) == [0])
    }
}

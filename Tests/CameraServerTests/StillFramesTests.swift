import MediaSources
import RTCBase
import Testing

@testable import CameraServer

@Suite("Stills: demand, rate caps and the per-frame cache (issue 21)")
struct StillFramesTests {
    @Test func rateCapOnAThirtyFrameSource() {
        var demand = StillDemand()
        demand.subscribe(id: 1, width: 0, interval: .milliseconds(100))   // 10 fps
        demand.subscribe(id: 2, width: 320, interval: .milliseconds(500))  // 2 fps
        var delivered = [1: 0, 2: 0]
        for frame in 0..<300 {   // 10 s at 30 fps
            let plan = demand.frameArrived(now: MonotonicTime(milliseconds: 1000 + UInt64(frame) * 100 / 3))
            for id in plan.subscribers { delivered[id, default: 0] += 1 }
        }
        // The first frame is sent at once, then one per interval: 10 s hold 100 and 20 intervals.
        #expect(delivered[1] == 100)
        #expect(delivered[2] == 20 || delivered[2] == 21)
        demand.unsubscribe(id: 1)
        demand.unsubscribe(id: 2)
        #expect(demand.isEmpty)
    }

    @Test func pendingRequestsAreTakenByOneFrameAndCodedOncePerWidth() {
        var demand = StillDemand()
        demand.addRequest(width: 0)
        demand.addRequest(width: 0)
        demand.addRequest(width: 320)
        let plan = demand.frameArrived(now: MonotonicTime(seconds: 1))
        #expect(plan.widths == [0, 320])
        #expect(plan.requests == [0: 2, 320: 1])
        #expect(demand.isEmpty)
        #expect(demand.frameArrived(now: MonotonicTime(seconds: 2)).widths.isEmpty)
    }

    @Test func manyClientsOneEncodeAndTheCache() throws {
        let stills = StillFrames()
        let answers = Answers()
        let now = MonotonicTime(seconds: 5)
        for _ in 0..<5 { stills.request(width: 0, now: now, freshFor: .milliseconds(33)) { answers.add($0) } }
        #expect(stills.isWanted)
        let frame = try RawVideoFrame(width: 32, height: 16, pixelFormat: .i420, bytes: [UInt8](repeating: 0, count: 32 * 16 * 3 / 2),
                                      captureTime: now, sequenceNumber: 9)
        var encodes = 0
        stills.offer(now: now) { width in
            encodes += 1
            return .success(StillImage(jpeg: [0xFF, 0xD8], width: 32, height: 16, captureTime: frame.captureTime, frameSequence: 9))
        }
        #expect(encodes == 1)
        #expect(answers.count == 5)
        #expect(!stills.isWanted)
        // Within a frame interval the cached one is served without waking the video thread.
        stills.request(width: 0, now: now + .milliseconds(20), freshFor: .milliseconds(33)) { answers.add($0) }
        #expect(answers.count == 6 && !stills.isWanted)
        // Older: waits for the next frame; a timeout answers it.
        let id = stills.request(width: 0, now: now + .milliseconds(50), freshFor: .milliseconds(33)) { answers.add($0) }
        #expect(id != nil && stills.isWanted)
        stills.cancel(id!)
        #expect(answers.last == .failure(.timedOut))
        #expect(!stills.isWanted)
        // A source without raw pictures says why, at once.
        stills.setUnavailable("passthrough")
        stills.request(width: 0, now: now, freshFor: .milliseconds(33)) { answers.add($0) }
        #expect(answers.last == .failure(.unavailable("passthrough")))
    }
}

private final class Answers: @unchecked Sendable {
    private var results: [Result<StillImage, StillFailure>] = []
    func add(_ result: Result<StillImage, StillFailure>) { results.append(result) }
    var count: Int { results.count }
    var last: Result<StillImage, StillFailure>? { results.last }
}

extension StillImage: Equatable {
    public static func == (lhs: StillImage, rhs: StillImage) -> Bool {
        lhs.jpeg == rhs.jpeg && lhs.frameSequence == rhs.frameSequence
    }
}

import JPEG
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

extension StillFramesTests {
    /// A camera's own JPEG (MJPEG capture): the camera's size is its bytes as they are, a smaller
    /// width is decoded once however many widths ask, scaled and coded; with nobody asking nothing
    /// is decoded; the cache goes once nobody asked for `idleRelease`.
    @Test func cameraJPEGPassedThroughAndDecodedOnlyForSmallerWidths() throws {
        let width = 64, height = 48
        let luma = [UInt8](repeating: 90, count: width * height)
        let chroma = [UInt8](repeating: 128, count: width / 2 * height)
        let cameraJPEG = try JPEGEncoder().encode(planes: [luma, chroma, chroma], width: width, height: height,
                                                  subsampling: .yuv422, quality: 90) + [0, 0, 0]   // UVC padding
        let whole = try JPEGBounds.wholeImage(in: cameraJPEG).get()
        let stills = StillFrames()
        var stage = JPEGStage(idleRelease: .seconds(10))
        let answers = Answers()
        let now = MonotonicTime(seconds: 3)
        stills.request(width: 0, now: now, freshFor: .milliseconds(33)) { answers.add($0) }
        stills.request(width: 4096, now: now, freshFor: .milliseconds(33)) { answers.add($0) }   // never scaled up: passed through too
        stills.request(width: 32, now: now, freshFor: .milliseconds(33)) { answers.add($0) }
        stills.request(width: 16, now: now, freshFor: .milliseconds(33)) { answers.add($0) }
        var decodes = 0
        let decoder = try JPEGDecoder()
        try cameraJPEG.withUnsafeBytes { raw in
            let jpeg = UnsafeRawBufferPointer(rebasing: raw[whole])
            stage.cameraJPEG(jpeg, width: width, height: height, captureTime: now, sequenceNumber: 5, at: now, stills) {
                decodes += 1
                return try? decoder.decodeI420(jpeg, captureTime: now, sequenceNumber: 5).frame
            }
            #expect(answers.count == 4)
            let images = answers.all.compactMap { try? $0.get() }
            #expect(images.count == 4)
            #expect(images.filter { $0.jpeg == Array(cameraJPEG[whole]) }.count == 2)
            #expect(Set(images.map(\.width)) == [64, 32, 16])
            #expect(images.allSatisfy { JPEGInfo.dimensions(of: $0.jpeg).map { [$0.width, $0.height] } == [$0.width, $0.height] })
            #expect(decodes == 1)
            // Nobody asks: nothing decoded; the passed-through cache goes after idleRelease.
            stage.cameraJPEG(jpeg, width: width, height: height, captureTime: now, sequenceNumber: 6, at: now + .milliseconds(40), stills) {
                decodes += 1
                return nil
            }
            #expect(decodes == 1)
        }
        stills.request(width: 0, now: now + .milliseconds(20), freshFor: .milliseconds(33)) { answers.add($0) }
        #expect(answers.count == 5)   // from the cache
        stage.idle(at: now + .seconds(1), stills)
        stage.idle(at: now + .seconds(12), stills)
        stills.request(width: 0, now: now + .milliseconds(30), freshFor: .seconds(100)) { answers.add($0) }
        #expect(answers.count == 5 && stills.isWanted)   // the cache is gone: it waits for a frame
    }
}

private final class Answers: @unchecked Sendable {
    private var results: [Result<StillImage, StillFailure>] = []
    var all: [Result<StillImage, StillFailure>] { results }
    func add(_ result: Result<StillImage, StillFailure>) { results.append(result) }
    var count: Int { results.count }
    var last: Result<StillImage, StillFailure>? { results.last }
}

extension StillImage: Equatable {
    public static func == (lhs: StillImage, rhs: StillImage) -> Bool {
        lhs.jpeg == rhs.jpeg && lhs.frameSequence == rhs.frameSequence
    }
}

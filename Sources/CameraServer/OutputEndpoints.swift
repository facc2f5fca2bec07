import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import OutputFormats
import RTCBase
import SystemSupport

/// The HTTP outputs beside WHEP (issue 21): GET /snapshot.jpg, GET /stream.mjpg and GET /metrics.
/// Stills come from StillFrames (coded on the video thread, only while asked for); the router
/// decides who may (`mayView`: like WHEP; `mayReadMetrics`: like the API, or a viewing token).
final class OutputEndpoints: @unchecked Sendable {  // immutable after init, but for the stream count (locked)
    let loop: EventLoop
    let stills: StillFrames
    /// The running pipeline's frame interval: a cached still at most this old is served as it is.
    let frameInterval: @Sendable () -> Duration
    let sourceFramesPerSecond: @Sendable () -> Int
    /// The Prometheus text (OutputEndpoints+Metrics / the daemon).
    let metrics: @Sendable () -> String
    /// How long a snapshot waits for a frame.
    let snapshotTimeout: Duration
    /// MJPEG: the highest rate a client may ask for, the default, and how many streams at once.
    static let maximumStreamRate = 15
    static let defaultStreamRate = 10
    static let maximumStreams = 16
    private let streamCount = NIOLockedValueBox(0)

    init(loop: EventLoop, stills: StillFrames, frameInterval: @escaping @Sendable () -> Duration,
         sourceFramesPerSecond: @escaping @Sendable () -> Int, snapshotTimeout: Duration = .seconds(3),
         metrics: @escaping @Sendable () -> String) {
        self.loop = loop
        self.stills = stills
        self.frameInterval = frameInterval
        self.sourceFramesPerSecond = sourceFramesPerSecond
        self.snapshotTimeout = snapshotTimeout
        self.metrics = metrics
    }

    var activeStreams: Int { streamCount.withLockedValue { $0 } }

    /// The answer for one of the paths `RequestFront.isOutputPath` names. `mayView` and `mayReadMetrics` are asked
    /// only for their own paths.
    func respond(to request: HTTPRequest, mayView: () -> Bool, mayReadMetrics: () -> Bool) -> EventLoopFuture<HTTPResponse> {
        guard request.method == .GET || request.method == .HEAD else {
            return loop.makeSucceededFuture(.text(.methodNotAllowed, "use GET", headers: [("Allow", "GET, HEAD")]))
        }
        switch request.path {
        case "/metrics":
            guard mayReadMetrics() else {
                return loop.makeSucceededFuture(.text(.unauthorized,
                    "metrics need the owner's login or a viewing token (Authorization: Bearer, or ?token=)",
                    headers: [("WWW-Authenticate", #"Bearer realm="rtcam""#)]))
            }
            return loop.makeSucceededFuture(HTTPResponse(status: .ok, headers: [("Content-Type", PrometheusText.contentType),
                                                                                ("Cache-Control", "no-store")],
                                                         body: Array(metrics().utf8)))
        default:
            guard mayView() else { return loop.makeSucceededFuture(Self.viewingRefused) }
            let width: Int
            switch QueryString.integer(named: "width", in: request.query) {
            case .absent: width = 0
            case let .value(value) where value >= 16 && value <= 8192: width = value
            default: return loop.makeSucceededFuture(.text(.badRequest, "width must be a whole number of pixels, 16 to 8192"))
            }
            if request.path == "/snapshot.jpg" { return snapshot(width: width) }
            if request.method == .HEAD {   // no stream is started (nor counted) for a HEAD
                return loop.makeSucceededFuture(HTTPResponse(status: .ok, headers: [("Content-Type", MultipartJPEG.contentType),
                                                                                     ("Cache-Control", "no-store")]))
            }
            return loop.makeSucceededFuture(stream(width: width, query: request.query))
        }
    }

    static let viewingRefused = HTTPResponse.text(
        .unauthorized, "viewing this camera needs the password (log in at /settings) or a viewing token (Authorization: Bearer, or ?token=)",
        headers: [("WWW-Authenticate", #"Bearer realm="rtcam""#)])

    // MARK: - Snapshot

    /// The latest frame as a JPEG: the cached one if it is of the current frame, else the next frame's
    /// (one encode for every client waiting on it); 503 with the reason when the source has no raw
    /// pictures or no frame comes within `snapshotTimeout`.
    private func snapshot(width: Int) -> EventLoopFuture<HTTPResponse> {
        let promise = loop.makePromise(of: HTTPResponse.self)
        let id = stills.request(width: width, now: MonotonicClock.now(), freshFor: frameInterval()) { result in
            promise.succeed(Self.response(to: result))
        }
        if let id {
            let stills = stills
            let timeout = loop.scheduleTask(in: .nanoseconds(snapshotTimeout.nanosecondsClamped)) { stills.cancel(id) }
            promise.futureResult.whenComplete { _ in timeout.cancel() }
        }
        return promise.futureResult
    }

    static func response(to result: Result<StillImage, StillFailure>) -> HTTPResponse {
        switch result {
        case let .success(image):
            return HTTPResponse(status: .ok, headers: [("Content-Type", "image/jpeg"), ("Cache-Control", "no-store")],
                                body: image.jpeg)
        case let .failure(.unavailable(reason)):
            return .text(.serviceUnavailable, "no snapshot: \(reason)")
        case .failure(.timedOut):
            return .text(.serviceUnavailable, "no frame came from the camera in time; try again", headers: [("Retry-After", "2")])
        case let .failure(.failed(reason)):
            return .text(.internalServerError, "the JPEG could not be made: \(reason)")
        }
    }

    // MARK: - MJPEG

    /// multipart/x-mixed-replace at `?fps=` (default 10, at most 15 and the camera's rate), `?width=`.
    private func stream(width: Int, query: Substring) -> HTTPResponse {
        let cap = max(1, min(Self.maximumStreamRate, sourceFramesPerSecond()))
        let rate: Int
        switch QueryString.integer(named: "fps", in: query) {
        case .absent: rate = min(Self.defaultStreamRate, cap)
        case let .value(value) where value >= 1: rate = min(value, cap)
        default: return .text(.badRequest, "fps must be a whole number, 1 to \(Self.maximumStreamRate)")
        }
        if case let .failure(.unavailable(reason)) = stills.availability {
            return .text(.serviceUnavailable, "no MJPEG stream: \(reason)")
        }
        let admitted: Bool = streamCount.withLockedValue { count in
            guard count < Self.maximumStreams else { return false }
            count += 1
            return true
        }
        guard admitted else {
            return .text(.serviceUnavailable, "already \(Self.maximumStreams) MJPEG streams; try again later", headers: [("Retry-After", "10")])
        }
        let stills = stills
        let streamCount = streamCount
        var response = HTTPResponse(status: .ok, headers: [("Content-Type", MultipartJPEG.contentType),
                                                           ("Cache-Control", "no-store"), ("Pragma", "no-cache")])
        response.stream = HTTPStreamingBody { writer in
            let subscription = stills.subscribe(width: width, interval: .nanoseconds(1_000_000_000 / Int64(rate))) { image in
                writer.write(MultipartJPEG.part(jpeg: image.jpeg))
            }
            writer.closed.whenComplete { _ in
                if case let .success(id) = subscription { stills.unsubscribe(id) }
                streamCount.withLockedValue { $0 -= 1 }
            }
            if case .failure = subscription { writer.finish() }
        }
        return response
    }
}

import JPEG
import V4L2
import MediaSources
import NIOConcurrencyHelpers
import RTCBase
import Synchronization

/// A JPEG made from one frame: what /snapshot.jpg answers and /stream.mjpg sends.
struct StillImage: Sendable {
    var jpeg: [UInt8]
    var width: Int
    var height: Int
    var captureTime: MonotonicTime
    /// The frame it was made from (a per-frame cache: every client asking during one frame gets this).
    var frameSequence: UInt64
}

/// Why no still came.
enum StillFailure: Error, Equatable, Sendable {
    /// The running source has no raw pictures (a passthrough H.264 camera, an H.264 file): the reason.
    case unavailable(String)
    /// No frame came in time (the camera stalled).
    case timedOut
    /// The frame could not be coded (libjpeg-turbo's message, a size it refused).
    case failed(String)
}

/// What stills clients want, as a value: pending one-shot requests (snapshots) and rate-capped
/// subscribers (MJPEG streams), keyed by the requested width (0: the source's). For each frame the
/// video thread gets it says which widths to code: a width at most once per frame, whatever the
/// number of clients, and a subscriber only when its rate cap allows. Time is passed in
/// (CameraServerTests/StillFramesTests run it on a virtual clock).
struct StillDemand: Equatable {
    struct Subscriber: Equatable {
        var width: Int
        var interval: Duration
        var next: MonotonicTime?
    }

    private(set) var pending: [Int: Int] = [:]          // width → requests waiting
    private(set) var subscribers: [Int: Subscriber] = [:]  // id → subscriber

    var isEmpty: Bool { pending.isEmpty && subscribers.isEmpty }

    mutating func addRequest(width: Int) { pending[width, default: 0] += 1 }

    mutating func removeRequest(width: Int) {
        guard let count = pending[width] else { return }
        pending[width] = count > 1 ? count - 1 : nil
    }

    mutating func subscribe(id: Int, width: Int, interval: Duration) {
        subscribers[id] = Subscriber(width: width, interval: interval, next: nil)
    }

    mutating func unsubscribe(id: Int) { subscribers[id] = nil }

    /// The widths to code for a frame taken at `now`, and the subscribers it goes to. The pending
    /// requests are taken (each is answered by this frame); a subscriber's next frame is due one
    /// `interval` after this one (a frame up to a quarter interval early still counts, so a 10 fps
    /// cap on a 30 fps source gives 10 fps, not 7.5).
    mutating func frameArrived(now: MonotonicTime) -> (widths: Set<Int>, requests: [Int: Int], subscribers: [Int]) {
        var widths = Set(pending.keys)
        let requests = pending
        pending = [:]
        var due: [Int] = []
        for (id, subscriber) in subscribers {
            if let next = subscriber.next, now < next - subscriber.interval / 4 { continue }
            due.append(id)
            widths.insert(subscriber.width)
            let planned = (subscriber.next ?? now) + subscriber.interval
            // Behind by more than an interval (a stall): start again from now instead of catching up.
            subscribers[id]?.next = planned < now ? now + subscriber.interval : planned
        }
        return (widths, requests, due.sorted())
    }
}

/// The stills side of the daemon, between the HTTP clients (event loop) and the video thread: the
/// demand, the waiting snapshot requests and MJPEG subscribers, and the JPEGs of the last frame. The
/// video thread asks `isWanted` for every frame (an atomic) and, when wanted, codes the widths
/// `offer` asks for with its own encoder (one owner of the libjpeg-turbo handle, JPEGStage).
/// Nothing is coded while nobody asks.
final class StillFrames: @unchecked Sendable {  // state under `lock`
    typealias Completion = @Sendable (Result<StillImage, StillFailure>) -> Void

    private let lock = NIOLock()
    private var demand = StillDemand()
    private var waiters: [Int: (width: Int, completion: Completion)] = [:]
    private var streams: [Int: @Sendable (StillImage) -> Void] = [:]
    private var cache: [Int: StillImage] = [:]
    private var unavailableReason: String?
    private var nextID = 0
    private let wanted = Atomic<Bool>(false)
    private var demandListener: (@Sendable () -> Void)?
    /// JPEGs coded since start (the per-frame cache makes this less than the stills served).
    private(set) var encodeCount = 0
    private(set) var servedCount = 0

    /// Called (outside the lock) when the demand appears or goes: wakes a sleeping video thread.
    func setDemandListener(_ listener: @escaping @Sendable () -> Void) {
        lock.withLock { demandListener = listener }
    }

    /// Read by the video thread for every frame.
    var isWanted: Bool { wanted.load(ordering: .relaxed) }

    var counts: (encoded: Int, served: Int, streams: Int) { lock.withLock { (encodeCount, servedCount, streams.count) } }

    /// One still `width` wide (0: the source's): from the cache if it holds that width of a frame
    /// at most `freshFor` old, else from the next frame. Returns an id for `cancel`, or nil when
    /// `completion` was already called.
    @discardableResult
    func request(width: Int, now: MonotonicTime, freshFor: Duration, completion: @escaping Completion) -> Int? {
        let (answer, id, listener): (Result<StillImage, StillFailure>?, Int?, (@Sendable () -> Void)?) = lock.withLock {
            if let reason = unavailableReason { return (.failure(.unavailable(reason)), nil, nil) }
            if let cached = cache[width], now - cached.captureTime <= freshFor {
                servedCount += 1
                return (.success(cached), nil, nil)
            }
            nextID += 1
            waiters[nextID] = (width, completion)
            demand.addRequest(width: width)
            return (nil, nextID, updateWanted())
        }
        listener?()
        if let answer { completion(answer) }
        return id
    }

    /// A request that timed out or whose client left: its completion is called with `.timedOut` if
    /// it had not been answered.
    func cancel(_ id: Int) {
        let (waiter, listener): ((width: Int, completion: Completion)?, (@Sendable () -> Void)?) = lock.withLock {
            guard let waiter = waiters.removeValue(forKey: id) else { return (nil, nil) }
            demand.removeRequest(width: waiter.width)
            return (waiter, updateWanted())
        }
        listener?()
        waiter?.completion(.failure(.timedOut))
    }

    /// An MJPEG client: `deliver` gets a still at most once per `interval` (on the video thread: it
    /// must not block). Returns nil (and the reason) when the source has no raw pictures.
    func subscribe(width: Int, interval: Duration, deliver: @escaping @Sendable (StillImage) -> Void) -> Result<Int, StillFailure> {
        let (result, listener): (Result<Int, StillFailure>, (@Sendable () -> Void)?) = lock.withLock {
            if let reason = unavailableReason { return (.failure(.unavailable(reason)), nil) }
            nextID += 1
            demand.subscribe(id: nextID, width: width, interval: interval)
            streams[nextID] = deliver
            return (.success(nextID), updateWanted())
        }
        listener?()
        return result
    }

    func unsubscribe(_ id: Int) {
        let listener: (@Sendable () -> Void)? = lock.withLock {
            demand.unsubscribe(id: id)
            streams[id] = nil
            return updateWanted()
        }
        listener?()
    }

    /// Whether stills can be made at all now (the running source has raw pictures).
    var availability: Result<Void, StillFailure> {
        lock.withLock { unavailableReason.map { .failure(.unavailable($0)) } ?? .success(()) }
    }

    /// The coder was closed (nobody asked for a while): the cached JPEGs go too (idle RSS).
    func dropCache() { lock.withLock { cache = [:] } }

    /// Set by the running video producer: nil when it has raw pictures, else why not. Waiting
    /// requests are answered with the reason at once.
    func setUnavailable(_ reason: String?) {
        let failed: [Completion] = lock.withLock {
            unavailableReason = reason
            cache = [:]
            guard reason != nil else { return [] }
            let all = waiters.values.map(\.completion)
            waiters = [:]
            for id in Array(demand.pending.keys) { while demand.pending[id] != nil { demand.removeRequest(width: id) } }
            _ = updateWanted()
            return all
        }
        for completion in failed { completion(.failure(.unavailable(reason ?? ""))) }
    }

    /// The video thread has a frame: makes (with `encode`) the still of each width someone waits for
    /// (a raw frame coded, or a camera's own JPEG passed through), answers the waiting requests and
    /// the due subscribers. Called only while `isWanted`.
    func offer(now: MonotonicTime, encode: (Int) -> Result<StillImage, StillFailure>) {
        let (plan, waiting, subscribed): ((widths: Set<Int>, requests: [Int: Int], subscribers: [Int]), [Int: (width: Int, completion: Completion)], [Int: @Sendable (StillImage) -> Void]) = lock.withLock {
            let plan = demand.frameArrived(now: now)
            let waiting = waiters
            waiters = [:]
            let subscribed = streams.filter { plan.subscribers.contains($0.key) }
            return (plan, waiting, subscribed)
        }
        var made: [Int: Result<StillImage, StillFailure>] = [:]
        for width in plan.widths.sorted() { made[width] = encode(width) }
        let listener: (@Sendable () -> Void)? = lock.withLock {
            for (width, result) in made {
                if case let .success(image) = result { cache[width] = image; encodeCount += 1 }
            }
            if cache.count > 4 { cache = cache.filter { made[$0.key] != nil } }  // a few widths at most
            servedCount += waiting.count
            return updateWanted()
        }
        for (_, waiter) in waiting { waiter.completion(made[waiter.width] ?? .failure(.failed("not coded"))) }
        for (id, deliver) in subscribed {
            guard let subscriberWidth = lock.withLock({ demand.subscribers[id]?.width }),
                  case let .success(image)? = made[subscriberWidth] else { continue }
            deliver(image)
        }
        listener?()
    }

    /// Under the lock: the atomic follows the demand; returns the listener when it changed.
    private func updateWanted() -> (@Sendable () -> Void)? {
        let now = !demand.isEmpty
        guard wanted.exchange(now, ordering: .relaxed) != now else { return nil }
        return demandListener
    }
}

/// The video thread's JPEG coder: the libjpeg-turbo handle is made when a still is first wanted and
/// closed once none has been for `idleRelease` (WhileWatched), like x264. Lives on the video thread.
struct JPEGStage {
    static let quality = 80
    private var encoder: WhileWatched<JPEGEncoder>
    /// A camera's own JPEGs handed out (no coder involved): the cache goes after `idleRelease` too.
    private var passedThrough: WhileWatched<Bool>

    init(idleRelease: Duration) {
        encoder = WhileWatched(keepFor: idleRelease)
        passedThrough = WhileWatched(keepFor: idleRelease)
    }

    /// Offers `frame` to the stills clients when any wait; else counts toward closing the coder.
    mutating func frame(_ frame: RawVideoFrame, at now: MonotonicTime, _ stills: StillFrames) {
        guard stills.isWanted else {
            idle(at: now, stills)
            return
        }
        stills.offer(now: now) { width in coded(frame, width: width, at: now) }
    }

    /// A camera's own JPEG (MJPEG capture, `jpeg` is its whole image, SOI to EOI, valid during the
    /// call): the stills of the camera's size are these bytes as they are (no re-encode); a smaller
    /// `?width=` is decoded (`decode`, shared with the H.264 path: at most once per frame), scaled
    /// and coded. Offered when any still is wanted; else counts toward closing the coder.
    mutating func cameraJPEG(_ jpeg: UnsafeRawBufferPointer, width: Int, height: Int, captureTime: MonotonicTime,
                             sequenceNumber: UInt64, at now: MonotonicTime, _ stills: StillFrames,
                             decode: () -> RawVideoFrame?) {
        guard stills.isWanted else {
            idle(at: now, stills)
            return
        }
        var copy: [UInt8]?
        var decoded: RawVideoFrame??   // decoded at most once, however many smaller widths are asked for
        stills.offer(now: now) { requested in
            if requested == 0 || requested >= width {
                _ = passedThrough.use(at: now) { true }
                // Out of the driver's buffer, which goes back to it; with the standard Huffman
                // tables put in when the camera left them out (MJPEG's convention), so any decoder takes it.
                let bytes = copy ?? MotionJPEGTables.completed(jpeg) ?? Array(jpeg)
                copy = bytes
                return .success(StillImage(jpeg: bytes, width: width, height: height, captureTime: captureTime,
                                           frameSequence: sequenceNumber))
            }
            if decoded == nil { decoded = .some(decode()) }
            guard let frame = decoded ?? nil else { return .failure(.failed("the camera's JPEG could not be decoded")) }
            return coded(frame, width: requested, at: now)
        }
    }

    private mutating func coded(_ frame: RawVideoFrame, width: Int, at now: MonotonicTime) -> Result<StillImage, StillFailure> {
        do {
            guard let jpeg = try encoder.use(at: now, make: { try JPEGEncoder() }) else {
                return .failure(.failed("libjpeg-turbo could not be set up; trying again in 5 s"))
            }
            let size = try StillPicture.outputSize(sourceWidth: frame.width, sourceHeight: frame.height,
                                                   requestedWidth: width == 0 ? nil : width)
            let picture = try StillPicture.i420(from: frame, width: size.width, height: size.height)
            let bytes = try jpeg.encode(picture, quality: Self.quality)
            return .success(StillImage(jpeg: bytes, width: size.width, height: size.height,
                                       captureTime: frame.captureTime, frameSequence: frame.sequenceNumber))
        } catch let error as JPEGError {
            return .failure(.failed(error.description))
        } catch {
            return .failure(.failed("\(error)"))
        }
    }

    /// No frame this tick (nobody watches): the coder goes after `idleRelease`.
    mutating func idle(at now: MonotonicTime, _ stills: StillFrames) {
        let coderClosed = encoder.unwatched(at: now)
        let passthroughEnded = passedThrough.unwatched(at: now)
        if coderClosed || passthroughEnded { stills.dropCache() }
    }
}

extension V4L2VideoSource {
    /// A captured buffer seen as a raw picture (zero-copy, valid while the buffer is held), for
    /// stills on the hardware-encoder path; nil for an H.264 camera or a buffer that is too short.
    func rawFrame(_ frame: V4L2Frame) -> RawVideoFrame? {
        guard let pixelFormat else { return nil }
        return try? RawVideoFrame(width: width, height: height, pixelFormat: pixelFormat,
                                  storage: .buffer(MappedFrameBuffer(bytes: frame.data)), planes: planeLayouts,
                                  captureTime: frame.captureTime, sequenceNumber: UInt64(frame.sequence))
    }
}

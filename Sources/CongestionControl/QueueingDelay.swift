import RTCBase

/// How long the newest reported packet waited in the path's queues: its one-way delay (remote arrival
/// less our send time; the two clocks' offset is unknown but constant) above the lowest one-way
/// delay seen over the last `window`. Sans-IO; fed with transport-cc results.
///
/// The trendline sees a queue grow; this says how deep the queue still is while it drains, which
/// `CongestionResponse` uses to pace under the link's rate until the link's own queue is short
/// (a resend sent behind 200 ms of drop-tail queue is 200 ms late, and lost again if it is full).
struct QueueingDelayTracker {
    /// The base is the lowest offset over this long (a route change or clock drift ages out).
    static let window: Duration = .seconds(10)
    static let bucketCount = 5

    /// Lowest offset (µs) per bucket of window / bucketCount, newest last.
    private var buckets: [(start: MonotonicTime, lowest: Int64)] = []
    /// The newest packet's offset (µs), when it was sent and when it arrived (µs, remote clock).
    private var newest: (sent: MonotonicTime, offset: Int64, arrival: Int64)?
    /// When (µs, remote clock) the newest packet that found the queue short (within `shortQueue`
    /// of the base) arrived: from then on the bottleneck was busy.
    private var shortQueueArrival: Int64?
    static let shortQueue: Int64 = 5_000

    mutating func update(received: [PacketResult]) {
        for result in received {
            guard let arrival = result.arrivalMicroseconds else { continue }
            let offset = arrival - Int64(result.sendTime.nanoseconds / 1000)
            let span = Self.window / Self.bucketCount
            if let last = buckets.last, result.sendTime < last.start + span, result.sendTime >= last.start {
                buckets[buckets.count - 1].lowest = min(last.lowest, offset)
            } else if buckets.last.map({ result.sendTime >= $0.start }) ?? true {
                buckets.append((result.sendTime, offset))
                if buckets.count > Self.bucketCount { buckets.removeFirst(buckets.count - Self.bucketCount) }
            } else {
                // Reported out of send order: it still counts towards the base.
                buckets[buckets.count - 1].lowest = min(buckets[buckets.count - 1].lowest, offset)
            }
            if newest.map({ result.sendTime >= $0.sent }) ?? true {
                newest = (result.sendTime, offset, arrival)
                if let base = buckets.map(\.lowest).min(), offset - base <= Self.shortQueue { shortQueueArrival = arrival }
            }
        }
    }

    /// The queue now, since when it has grown (µs, remote clock: where the bottleneck's busy
    /// period began) and how fast (ms of delay per ms of arrivals: what is sent over what the link
    /// passes, less one). Nil while the queue is short. Unlike the trendline's rise, this needs no
    /// completed send group: a keyframe sent in one burst into a link that just slowed shows its
    /// queue at the first feedback, where the trendline waits until all of it has arrived.
    var rise: (delay: Duration, since: Int64, slope: Double)? {
        guard let newest, let since = shortQueueArrival, let base = buckets.map(\.lowest).min(),
              newest.offset - base > Self.shortQueue, newest.arrival > since else { return nil }
        let delay = newest.offset - base
        return (.microseconds(delay), since, Double(delay) / Double(newest.arrival - since))
    }

    /// The newest reported packet: when it was sent and its queueing delay.
    var newestReported: (sent: MonotonicTime, delay: Duration)? {
        guard let newest, let base = buckets.map(\.lowest).min() else { return nil }
        return (newest.sent, .microseconds(max(0, newest.offset - base)))
    }

    /// The newest reported packet's queueing delay (nil before any arrival).
    var delay: Duration? { newestReported?.delay }
}

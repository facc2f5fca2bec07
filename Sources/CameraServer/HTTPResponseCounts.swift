import Synchronization

/// HTTP responses by status code since start, for /metrics (issue 21). Counted where every response
/// is written (HTTPHandler); one small lock, taken once per response.
final class HTTPResponseCounts: Sendable {
    static let shared = HTTPResponseCounts()

    private let counts = Mutex<[UInt: Int]>([:])

    func count(_ code: UInt) {
        counts.withLock { $0[code, default: 0] += 1 }
    }

    var snapshot: [(code: UInt, count: Int)] {
        counts.withLock { $0.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
    }
}

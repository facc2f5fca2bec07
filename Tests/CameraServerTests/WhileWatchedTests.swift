#if canImport(Glibc)
import Glibc
#endif
import RTCBase
import Synchronization
import Testing
@testable import CameraServer

/// The encoder and test-pattern memory that exists only while someone watches, on a virtual clock.
@Suite struct WhileWatchedTests {
    /// Counts how many are alive, so the tests see the resource really freed, not just forgotten.
    final class Census { var alive = 0 }
    final class Buffers {
        let id: Int
        let census: Census
        init(id: Int, census: Census = Census()) { self.id = id; self.census = census; census.alive += 1 }
        deinit { census.alive -= 1 }
    }

    static func at(_ milliseconds: UInt64) -> MonotonicTime { MonotonicTime(milliseconds: milliseconds) }

    @Test("made once on first use and reused while watched; nothing is made while nobody watches")
    func madeOnceAndReused() {
        var made = 0
        var slot = WhileWatched<Buffers>(keepFor: .seconds(10))
        #expect(slot.unwatched(at: Self.at(0)) == false)
        #expect(slot.resource == nil)
        for _ in 0 ..< 5 {
            _ = slot.use(at: Self.at(0)) { made += 1; return Buffers(id: made) }
        }
        #expect(made == 1)
        #expect(slot.resource?.id == 1)
    }

    @Test("dropped keepFor after the last viewer, not before; a viewer in between restarts the wait")
    func droppedAfterKeepFor() {
        let census = Census()
        var made = 0
        var slot = WhileWatched<Buffers>(keepFor: .seconds(10))
        _ = slot.use(at: Self.at(0)) { made += 1; return Buffers(id: made, census: census) }
        #expect(census.alive == 1)
        #expect(slot.unwatched(at: Self.at(1_000)) == false)
        #expect(slot.unwatched(at: Self.at(10_999)) == false)
        // A viewer comes back for one frame: the 10 s start again from the next unwatched moment.
        _ = slot.use(at: Self.at(10_999)) { made += 1; return Buffers(id: made, census: census) }
        #expect(slot.unwatched(at: Self.at(11_000)) == false)
        #expect(slot.unwatched(at: Self.at(20_999)) == false)
        #expect(slot.resource != nil)
        #expect(slot.unwatched(at: Self.at(21_000)) == true)
        #expect(slot.resource == nil)
        #expect(census.alive == 0)
        #expect(slot.unwatched(at: Self.at(40_000)) == false)
        // The next viewer gets a new one.
        #expect(slot.use(at: Self.at(40_001)) { made += 1; return Buffers(id: made, census: census) }?.id == 2)
        #expect(census.alive == 1)
        #expect(made == 2)
    }

    @Test("a make that throws leaves the slot empty and is not called again for retryAfter, then is")
    func failedMakeRetriedAfterAWhile() {
        struct Refused: Error {}
        var calls = 0
        var slot = WhileWatched<Int>(keepFor: .seconds(1), retryAfter: .seconds(5))
        #expect(throws: Refused.self) { try slot.use(at: Self.at(0)) { calls += 1; throw Refused() } }
        #expect(slot.resource == nil)
        // Every frame of the next 5 s: no new attempt (and so no error to log 30 times a second).
        for millisecond in stride(from: UInt64(33), to: 5_000, by: 33) {
            #expect(slot.use(at: Self.at(millisecond)) { calls += 1; return 7 } == nil)
        }
        #expect(calls == 1)
        #expect(throws: Refused.self) { try slot.use(at: Self.at(5_000)) { calls += 1; throw Refused() } }
        #expect(calls == 2)
        #expect(slot.use(at: Self.at(10_000)) { calls += 1; return 7 } == 7)
        #expect(slot.use(at: Self.at(10_033)) { calls += 1; return 8 } == 7)
        #expect(calls == 3)
    }
}

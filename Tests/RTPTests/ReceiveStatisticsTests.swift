import RTCBase
import Testing

@testable import RTP

@Suite("Receive statistics (RFC 3550 §6.4.1, §A.1, §A.3, §A.8) and NACK list (RFC 4585 §6.2.1)")
struct ReceiveStatisticsTests {
    /// 8 kHz clock (1 tick = 125 µs), 20 ms packets (160 ticks); seqs 3 and 7 lost.
    ///
    ///  seq  ts    arrival  transit(ticks) |D|   16·J: J16 += |D| − ((J16 + 8) >> 4)
    ///   0     0   100 ms    800            –     0
    ///   1   160   120 ms    800            0     0
    ///   2   320   145 ms    840           40     40
    ///   4   640   180 ms    800           40     40 + 40 − 3  = 77
    ///   5   800   200 ms    800            0     77 + 0 − 5   = 72
    ///   6   960   230 ms    880           80     72 + 80 − 5  = 147
    ///   8  1280   260 ms    800           80     147 + 80 − 9 = 218
    ///   9  1440   280 ms    800            0     218 + 0 − 14 = 204 → jitter 204 >> 4 = 12
    ///
    /// expected 10, received 8: cumulative lost 2, fraction (2 << 8) / 10 = 51.
    @Test func reportBlockMatchesHandComputedExample() {
        var stats = ReceiveStatistics(ssrc: 0xABCD, clockRate: 8000)
        let arrivals: [(UInt16, UInt32, UInt64)] = [
            (0, 0, 100), (1, 160, 120), (2, 320, 145), (4, 640, 180), (5, 800, 200), (6, 960, 230),
            (8, 1280, 260), (9, 1440, 280),
        ]
        for (seq, ts, ms) in arrivals {
            stats.packetReceived(sequenceNumber: seq, rtpTimestamp: ts, arrival: MonotonicTime(milliseconds: ms))
        }
        stats.senderReportReceived(ntp: 0x1234_5678_9ABC_DEF0, arrival: MonotonicTime(milliseconds: 1000))
        let block = stats.reportBlock(now: MonotonicTime(milliseconds: 1500))
        #expect(block == ReportBlock(ssrc: 0xABCD, fractionLost: 51, cumulativeLost: 2, highestSequence: 9,
                                     jitter: 12, lastSR: 0x5678_9ABC, delaySinceLastSR: 32768))

        // Next interval: 10...19 all arrive (steady transit) and 3 comes late: more received than
        // expected in the interval → fraction 0; cumulative 20 − 19 = 1.
        for seq in UInt16(10)...19 {
            let ms = 280 + 20 * UInt64(seq - 9)
            stats.packetReceived(sequenceNumber: seq, rtpTimestamp: UInt32(seq) * 160, arrival: MonotonicTime(milliseconds: ms))
        }
        stats.packetReceived(sequenceNumber: 3, rtpTimestamp: 480, arrival: MonotonicTime(milliseconds: 500))
        let second = stats.reportBlock(now: MonotonicTime(milliseconds: 2000))
        #expect(second.fractionLost == 0)
        #expect(second.cumulativeLost == 1)
        #expect(second.highestSequence == 19)
        // Steady arrivals decay the jitter: 10 steps of J16 −= (J16 + 8) >> 4 from 204.
        var expectedQ4: UInt32 = 204
        for _ in 0..<10 { expectedQ4 -= (expectedQ4 + 8) >> 4 }
        #expect(second.jitter == expectedQ4 >> 4)
        #expect(second.delaySinceLastSR == 65536)
    }

    @Test func noSenderReportMeansZeroLSRAndDLSR() {
        var stats = ReceiveStatistics(ssrc: 1, clockRate: 90000)
        stats.packetReceived(sequenceNumber: 5, rtpTimestamp: 0, arrival: .zero)
        let block = stats.reportBlock(now: MonotonicTime(seconds: 3))
        #expect(block.lastSR == 0 && block.delaySinceLastSR == 0)
        #expect(block.fractionLost == 0 && block.cumulativeLost == 0 && block.highestSequence == 5)
    }

    @Test func extendedHighestSequenceCountsCycles() {
        var stats = ReceiveStatistics(ssrc: 1, clockRate: 90000)
        var seq: UInt16 = 65530
        for _ in 0..<12 {
            stats.packetReceived(sequenceNumber: seq, rtpTimestamp: 0, arrival: .zero)
            seq &+= 1
        }
        #expect(stats.extendedHighestSequence == 65536 + 5)
        #expect(stats.cumulativeLost == 0)
        // A jump beyond MAX_DROPOUT is ignored once, then accepted as a restart (§A.1).
        stats.packetReceived(sequenceNumber: 30000, rtpTimestamp: 0, arrival: .zero)
        #expect(stats.extendedHighestSequence == 65536 + 5)
        stats.packetReceived(sequenceNumber: 30001, rtpTimestamp: 0, arrival: .zero)
        #expect(stats.extendedHighestSequence == 30001)
        #expect(stats.packetsReceived == 1)
    }

    @Test func nackListRetriesAndLimits() {
        var stats = ReceiveStatistics(ssrc: 1, clockRate: 90000, nackRetryInterval: .milliseconds(20), maxNACKsPerPacket: 10)
        let t0 = MonotonicTime(seconds: 10)
        for seq: UInt16 in [0, 1, 2, 5] { stats.packetReceived(sequenceNumber: seq, rtpTimestamp: 0, arrival: t0) }
        #expect(stats.nextNACKTime == .zero)  // due now
        #expect(stats.missingSequenceNumbers(now: t0) == [3, 4])
        #expect(stats.missingSequenceNumbers(now: t0 + .milliseconds(5)) == [])  // not again within 20 ms
        #expect(stats.nextNACKTime == t0 + .milliseconds(20))
        #expect(stats.missingSequenceNumbers(now: t0 + .milliseconds(20)) == [3, 4])
        stats.packetReceived(sequenceNumber: 3, rtpTimestamp: 0, arrival: t0 + .milliseconds(25))  // retransmission
        #expect(stats.missingSequenceNumbers(now: t0 + .milliseconds(40)) == [4])
        // 4 has been NACKed 3 times; 7 more, then it is given up.
        for round in 3..<10 {
            #expect(stats.missingSequenceNumbers(now: t0 + .milliseconds(40 + 20 * Int64(round - 2))) == [4])
        }
        #expect(stats.missingSequenceNumbers(now: t0 + .seconds(5)) == [])
        #expect(stats.missingSequenceNumberCount == 0)
        #expect(stats.nextNACKTime == nil)
    }

    @Test func nackListForgetsOldGapsAndHandlesTheWrap() {
        var stats = ReceiveStatistics(ssrc: 1, clockRate: 90000, nackHistoryLength: 1000)
        let now = MonotonicTime(seconds: 1)
        stats.packetReceived(sequenceNumber: 65534, rtpTimestamp: 0, arrival: now)
        stats.packetReceived(sequenceNumber: 1, rtpTimestamp: 0, arrival: now)
        #expect(stats.missingSequenceNumbers(now: now) == [65535, 0])
        // A 2500-packet gap: only the last 1000 are kept, the older ones (65535, 0 too) forgotten.
        stats.packetReceived(sequenceNumber: 2501, rtpTimestamp: 0, arrival: now)
        let list = stats.missingSequenceNumbers(now: now + .seconds(1))
        #expect(list.count == 1000)
        #expect(list.first == 1501 && list.last == 2500)
        let nack = GenericNACK(senderSSRC: 1, mediaSSRC: 2, lostSequenceNumbers: list)
        #expect(nack.entries.count == 59)  // ceil(1000 / 17)
    }

    @Test func duplicatesAndReorderingDoNotBreakCounts() {
        var stats = ReceiveStatistics(ssrc: 1, clockRate: 90000)
        for seq: UInt16 in [10, 12, 11, 12, 13] { stats.packetReceived(sequenceNumber: seq, rtpTimestamp: 0, arrival: .zero) }
        #expect(stats.cumulativeLost == -1)  // RFC 3550 §6.4.1: duplicates count as received
        #expect(stats.missingSequenceNumbers(now: .zero) == [])
        #expect(stats.reportBlock(now: .zero).cumulativeLost == -1)
    }

    @Test func fuzzRandomArrivals() {
        var rng = SeededRandom(seed: 3550)
        var stats = ReceiveStatistics(ssrc: 1, clockRate: 90000)
        var seq: UInt16 = 0
        var time = MonotonicTime(seconds: 1)
        for _ in 0..<5000 {
            switch Int.random(in: 0..<10, using: &rng) {
            case 0: seq = UInt16.random(in: 0...UInt16.max, using: &rng)
            case 1, 2: seq &-= UInt16.random(in: 0...200, using: &rng)
            default: seq &+= UInt16.random(in: 1...40, using: &rng)
            }
            time = time + .microseconds(Int64.random(in: 0...40_000, using: &rng))
            stats.packetReceived(sequenceNumber: seq, rtpTimestamp: UInt32.random(in: 0...UInt32.max, using: &rng), arrival: time)
            if Int.random(in: 0..<8, using: &rng) == 0 {
                let list = stats.missingSequenceNumbers(now: time)
                #expect(list.count <= 1000)
                _ = stats.reportBlock(now: time)
            }
            if Int.random(in: 0..<100, using: &rng) == 0 {
                stats.senderReportReceived(ntp: UInt64.random(in: 0...UInt64.max, using: &rng), arrival: time)
            }
        }
        #expect(stats.missingSequenceNumberCount <= 1000)
    }
}

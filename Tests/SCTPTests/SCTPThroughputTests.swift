#if canImport(Glibc)
import Glibc
#endif
import RTCBase
import SCTP
import Testing

/// A rough CPU throughput figure: two associations over the in-memory network with no delay and no
/// loss, one sending to the other (checksums, chunking, SACKs, reassembly; no DTLS). Runs only with
/// SCTP_THROUGHPUT set:
/// `SCTP_THROUGHPUT=1 swift test -c release --no-parallel --filter SCTPThroughput`
/// One thread does both associations' work and the simulated network's.
@Suite("SCTP throughput (in-memory)", .enabled(if: getenv("SCTP_THROUGHPUT") != nil))
struct SCTPThroughputTests {
    /// CPU time of this thread: on a machine shared with other builds it, not the wall clock, says
    /// what the code costs.
    static func threadCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    static func measure(messageSize: Int, count: Int) -> (messagesPerSecond: Double, megabytesPerSecond: Double, cpuMessagesPerSecond: Double, cpuMegabytesPerSecond: Double) {
        let pair = SCTPPair(seed: 1)
        pair.record = false
        pair.network.baseDelay = .zero
        pair.network.jitter = .zero
        _ = pair.connect()
        let message = [UInt8](repeating: 0x5A, count: messageSize)
        let clock = ContinuousClock()
        let start = clock.now
        let startCPU = threadCPUSeconds()
        var sent = 0
        while sent < count {
            while sent < count, pair.peers[0].bufferedAmount < 1 << 20 {
                try? pair.peers[0].send(message, stream: 1, ppid: 53, now: pair.now)
                sent += 1
            }
            pair.run(for: .milliseconds(1))
        }
        pair.run(for: .seconds(60)) { pair.receivedCount[1] == count }
        let elapsed = clock.now - start
        let cpu = threadCPUSeconds() - startCPU
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        #expect(pair.receivedCount[1] == count)
        #expect(pair.receivedBytes[1] == count * messageSize)
        return (Double(count) / seconds, Double(count * messageSize) / seconds / 1e6,
                Double(count) / cpu, Double(count * messageSize) / cpu / 1e6)
    }

    @Test func oneKiB() {
        let result = Self.measure(messageSize: 1024, count: 200_000)
        print("SCTP throughput 1 KiB: \(Int(result.messagesPerSecond)) messages/s, \(Int(result.megabytesPerSecond)) MB/s wall clock;",
              "\(Int(result.cpuMessagesPerSecond)) messages/s, \(Int(result.cpuMegabytesPerSecond)) MB/s per CPU second")
    }

    @Test func sixtyFourKiB() {
        let result = Self.measure(messageSize: 64 * 1024, count: 5_000)
        print("SCTP throughput 64 KiB: \(Int(result.messagesPerSecond)) messages/s, \(Int(result.megabytesPerSecond)) MB/s wall clock;",
              "\(Int(result.cpuMessagesPerSecond)) messages/s, \(Int(result.cpuMegabytesPerSecond)) MB/s per CPU second")
    }

    @Test func crc32c() {
        let bytes = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let start = Self.threadCPUSeconds()
        var sum: UInt32 = 0
        for _ in 0..<256 { sum ^= CRC32c.checksum(bytes) }
        let cpu = Self.threadCPUSeconds() - start
        print("CRC32c: \(Int(256.0 * Double(1 << 20) / cpu / 1e6)) MB/s per CPU second (\(sum))")
    }
}

import MediaSources
import Opus
import RTCBase
import Testing

@Suite struct OpusCodecTests {
    /// Encodes 1.2 s of the test tone (60 × 20 ms) and decodes it again.
    static func roundTrip(channels: Int, application: OpusApplication = .voip)
        throws -> (frames: [EncodedAudioFrame], decoded: [Int16], lookahead: Int) {
        let tone = TestToneSource(channels: channels)
        let encoder = try OpusEncoder(channels: channels, bitrate: 48_000, application: application)
        let decoder = try OpusDecoder(channels: channels)
        var frames: [EncodedAudioFrame] = []
        var decoded: [Int16] = []
        for index in 0 ..< 60 {
            let start = Int64(index * 960)
            let frame = try encoder.encode(tone.samples(startingAt: start, count: 960),
                                           captureTime: TestToneSource.time(ofSample: start))
            frames.append(frame)
            decoded += try decoder.decode(frame.packet)
        }
        return (frames, decoded, encoder.lookaheadSamples)
    }

    /// Goertzel power of `frequency` in `samples` at 48 kHz.
    static func power(_ samples: ArraySlice<Int16>, frequency: Double) -> Double {
        let omega = 2 * Double.pi * frequency / 48_000
        // cos(ω) via the tone module's approach is internal; a short series is enough here.
        var cosine = 1.0, term = 1.0
        for k in 1 ... 12 { term *= -omega * omega / Double((2 * k - 1) * (2 * k)); cosine += term }
        var s1 = 0.0, s2 = 0.0
        for sample in samples {
            let s0 = Double(sample) + 2 * cosine * s1 - s2
            s2 = s1
            s1 = s0
        }
        return s1 * s1 + s2 * s2 - 2 * cosine * s1 * s2
    }

    @Test func toneAndClicksSurviveEncodeDecode() throws {
        let (frames, decoded, lookahead) = try Self.roundTrip(channels: 1)
        #expect(frames.count == 60 && decoded.count == 60 * 960)
        #expect(frames.allSatisfy { $0.sampleCount == 960 && OpusDecoder.sampleCount(ofPacket: $0.packet) == 960 })
        #expect(frames[50].captureTime == MonotonicTime(milliseconds: 1_000))
        // ~48 kb/s: 120 bytes per 20 ms on average, well below the 1275-byte limit.
        let average = frames.reduce(0) { $0 + $1.packet.count } / frames.count
        #expect(average > 40 && average < 250, "average packet \(average) bytes")

        // The 440 Hz tone, between the clicks.
        let middle = decoded[12_000 ..< 36_000]
        let at440 = Self.power(middle, frequency: 440)
        for other in [220.0, 660, 880, 1_000, 3_000] {
            #expect(at440 > 100 * Self.power(middle, frequency: other), "440 Hz vs \(other) Hz")
        }
        var crossings = 0
        for index in middle.indices.dropFirst() where (decoded[index - 1] < 0) != (decoded[index] < 0) { crossings += 1 }
        #expect(abs(crossings - 440) <= 6, "\(crossings) zero crossings in 0.5 s")
        let peak = middle.map { abs(Int($0)) }.max() ?? 0
        #expect(peak > 6_000 && peak < 11_000, "tone peak \(peak)")

        // The click at 1 s comes out `lookahead` samples late: the loudest 5 ms window near there.
        var bestStart = 0, bestEnergy = 0
        for start in stride(from: 46_000, to: 51_000, by: 8) {
            let energy = decoded[start ..< start + 240].reduce(0) { $0 + Int($1) * Int($1) }
            if energy > bestEnergy { (bestStart, bestEnergy) = (start, energy) }
        }
        #expect(abs(bestStart - (48_000 + lookahead)) <= 96, "click at sample \(bestStart), lookahead \(lookahead)")
        let clickPeak = decoded[bestStart ..< bestStart + 240].map { abs(Int($0)) }.max() ?? 0
        #expect(clickPeak > 16_000, "click peak \(clickPeak)")
    }

    @Test func stereoAndRestrictedLowDelay() throws {
        let (frames, decoded, lookahead) = try Self.roundTrip(channels: 2, application: .restrictedLowDelay)
        #expect(frames.count == 60 && decoded.count == 2 * 60 * 960)
        #expect(lookahead < 200)       // CELT only: 2.5 ms lookahead instead of 6.5 ms
        let left = decoded.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        #expect(Self.power(left[12_000 ..< 36_000], frequency: 440) > 100 * Self.power(left[12_000 ..< 36_000], frequency: 1_000))
    }

    @Test func fecLossConcealmentAndBadInput() throws {
        let tone = TestToneSource(channels: 1)
        let encoder = try OpusEncoder(channels: 1, bitrate: 24_000, inbandFEC: true, expectedPacketLossPercent: 20)
        try encoder.setBitrate(32_000)
        #expect(encoder.bitrate == 32_000)
        try encoder.setExpectedPacketLoss(percent: 15)
        let packets = try (0 ..< 10).map { try encoder.encode(tone.samples(startingAt: Int64($0 * 960) + 480, count: 960), captureTime: .zero).packet }
        let decoder = try OpusDecoder(channels: 1)
        for packet in packets[0 ..< 5] { #expect(try decoder.decode(packet).count == 960) }
        // Packet 5 lost: recover it from packet 6's in-band FEC, then decode packet 6 itself.
        #expect(try decoder.decode(packets[6], useFEC: true).count == 960)
        #expect(try decoder.decode(packets[6]).count == 960)
        // Packets 7 lost without FEC: concealment.
        #expect(try decoder.decode(nil).count == 960)
        #expect(try decoder.decode(packets[8]).count == 960)

        #expect(throws: OpusError.wrongFrameSize(expected: 960, got: 100)) { try encoder.encode([Int16](repeating: 0, count: 100), captureTime: .zero) }
        #expect(throws: OpusError.self) { try OpusEncoder(channels: 3) }
        #expect(OpusDecoder.sampleCount(ofPacket: []) == nil)
        var random = SeededRandom(seed: 3)
        for _ in 0 ..< 500 {
            let garbage = (0 ..< Int.random(in: 0 ... 60, using: &random)).map { _ in UInt8.random(in: 0 ... 255, using: &random) }
            _ = try? decoder.decode(garbage)
            _ = OpusDecoder.sampleCount(ofPacket: garbage)
        }
    }
}

import EchoCanceller
#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers
import RTCBase
import Talkback

/// Between talkback's player and the camera's microphone (issue 17). The player says what it
/// played and until when; the microphone's thread hands each captured period to `process`, which
/// mutes it (half duplex), cancels the echo in it (full duplex with speexdsp), or leaves it. One per
/// daemon (`shared`); tests make their own.
final class MicrophoneGate: @unchecked Sendable {
    static let shared = MicrophoneGate()

    private let lock = NIOLock()
    private var gate = HalfDuplexGate()
    private var handling = EchoHandling.halfDuplex
    private var reference = FarEndReference()
    private var mutedPeriods = 0
    private var cancelledPeriods = 0
    /// Mean square of the microphone and of the canceller's output over the periods with
    /// talkback audio (their ratio is the echo return loss enhancement, ERLE).
    private var echoPower: (input: Double, output: Double) = (0, 0)
    /// Used by the microphone's thread only.
    private var canceller: SpeexEchoCanceller?

    func setHandling(_ new: EchoHandling) { lock.withLock { handling = new } }
    var currentHandling: EchoHandling { lock.withLock { handling } }

    /// The player wrote `frame` (48 kHz mono, as it goes to the speaker), whose first sample is
    /// heard at `time`; audible talkback then lasts until `end`.
    func talkbackPlayed(_ frame: [Int16], at time: MonotonicTime, audibleUntil end: MonotonicTime) {
        lock.withLock {
            gate.talkbackPlays(until: end)
            if handling == .cancel { reference.played(frame, at: time) }
        }
    }

    /// The microphone's period (48 kHz mono, first sample at `time`) as it should be encoded.
    func process(_ samples: [Int16], capturedAt time: MonotonicTime) -> [Int16] {
        let (mode, far, playing): (EchoHandling, [Int16], Bool) = lock.withLock {
            switch handling {
            case .halfDuplex:
                guard gate.mutes(capturedAt: time) else { return (.halfDuplex, [], false) }
                mutedPeriods += 1
                return (.halfDuplex, [], true)
            case .cancel:
                let far = reference.reference(capturedAt: time, count: samples.count)
                return (.cancel, far, gate.mutes(capturedAt: time))
            case .off:
                return (.off, [], false)
            }
        }
        switch mode {
        case .halfDuplex:
            return playing ? [Int16](repeating: 0, count: samples.count) : samples
        case .off:
            return samples
        case .cancel:
            if canceller == nil || canceller?.frameSize != samples.count {
                canceller = SpeexEchoCanceller(frameSize: samples.count, sampleRate: 48_000, filterMilliseconds: 200)
            }
            guard let canceller else { return samples }
            let output = canceller.process(microphone: samples, reference: far)
            if playing {
                let input = Self.meanSquare(samples), result = Self.meanSquare(output)
                lock.withLock {
                    cancelledPeriods += 1
                    echoPower.input += input
                    echoPower.output += result
                }
            }
            return output
        }
    }

    static func meanSquare(_ samples: [Int16]) -> Double {
        guard !samples.isEmpty else { return 0 }
        var sum = 0.0
        for sample in samples { sum += Double(sample) * Double(sample) }
        return sum / Double(samples.count)
    }

    struct Counters {
        var handling: EchoHandling
        var mutedPeriods: Int
        var cancelledPeriods: Int
        /// 10·log10(microphone power / output power) over the periods with talkback playing.
        var echoReturnLossEnhancementDB: Double?
    }

    var counters: Counters {
        lock.withLock {
            var erle: Double?
            if echoPower.output > 0, echoPower.input > 0 { erle = 10 * log10(echoPower.input / echoPower.output) }
            return Counters(handling: handling, mutedPeriods: mutedPeriods, cancelledPeriods: cancelledPeriods,
                            echoReturnLossEnhancementDB: erle)
        }
    }

    /// Microphone periods muted so far (/api/status).
    var mutedPeriodCount: Int { lock.withLock { mutedPeriods } }
}

import NIOConcurrencyHelpers
import RTCBase
import Talkback

/// Half duplex between talkback and the camera's microphone (issue 17): the talkback player says
/// until when it plays audible sound, the microphone's thread asks whether a period it captured is
/// to be muted. One per daemon (`shared`); tests make their own.
final class MicrophoneGate: Sendable {
    static let shared = MicrophoneGate()

    private let gate = NIOLockedValueBox(HalfDuplexGate())
    /// Off: full duplex (nothing muted).
    private let enabled = NIOLockedValueBox(true)
    private let mutedPeriods = NIOLockedValueBox(0)

    func setEnabled(_ on: Bool) { enabled.withLockedValue { $0 = on } }

    func talkbackPlays(until end: MonotonicTime) {
        gate.withLockedValue { $0.talkbackPlays(until: end) }
    }

    /// Whether the microphone's period captured at `time` is replaced by silence.
    func mutes(capturedAt time: MonotonicTime) -> Bool {
        guard enabled.withLockedValue({ $0 }), gate.withLockedValue({ $0.mutes(capturedAt: time) }) else { return false }
        mutedPeriods.withLockedValue { $0 += 1 }
        return true
    }

    /// Microphone periods muted so far (/api/status).
    var mutedPeriodCount: Int { mutedPeriods.withLockedValue { $0 } }
}

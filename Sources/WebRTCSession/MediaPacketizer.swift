import RTCBase
import RTP

/// The kind of a media stream rtcam sends.
public enum MediaKind: Sendable, Hashable {
    case video
    case audio

    /// RTP clock rates: 90 kHz for video (RFC 6184 §8.2.1), 48 kHz for Opus (RFC 7587 §4.1).
    public var clockRate: UInt64 {
        switch self {
        case .video: return 90_000
        case .audio: return 48_000
        }
    }
}

/// One plaintext RTP packet as packetized once for every viewer. The payload-type byte is rewritten
/// per viewer (each browser picks its own payload type numbers); SSRC, sequence numbers and
/// timestamps are shared, so one history per video layer answers every viewer's NACKs.
///
/// Video comes in two layers (issue 24) with one SSRC and one timestamp base but a sequence series
/// each; a viewer's session rewrites the sequence number (and shifts the timestamp where a switch
/// needs it, VideoLayerRewriter) in its own copy of the header, so `bytes` stay shared.
public struct OutgoingPacket: Sendable {
    public var kind: MediaKind
    public var bytes: [UInt8]
    /// The layer's sequence number as packetized; in a session's pacer, the viewer's (rewritten).
    public var sequenceNumber: UInt16
    /// Added to the timestamp in `bytes` for this viewer (0 but after a switch that needed it).
    public var timestampShift: UInt32 = 0
    public var layer: VideoLayer = .full
    /// True on the first packet of a keyframe (IDR) access unit: a viewer that has not been sent a
    /// keyframe yet starts here and skips what comes before, which its decoder could not use.
    public var startsKeyframe: Bool
    public var captureTime: MonotonicTime
}

/// Packetizes encoded media once for every viewer and keeps the shared retransmission history
/// (DESIGN.md: per-viewer state stays small; NACKs are answered from here and protected per viewer).
/// Sending the packets to each viewer (the fan-out) is the server's: StreamHub.broadcast.
public struct MediaPacketizer: Sendable {
    /// Largest RTP payload so that header (12) + RTX's original sequence number (2, RFC 4588 §4) +
    /// the largest SRTP trailer (16, AEAD) + 20 bytes kept for header extensions stay within 1200
    /// bytes on the wire (the MTU every browser assumes for WebRTC).
    public static let maxRTPPayloadSize = 1200 - 12 - 2 - 16 - 20

    public let videoSSRC: UInt32
    public let videoRTXSSRC: UInt32
    public let audioSSRC: UInt32
    /// Each video layer's own sequence series (its packets' numbers are contiguous, so its history
    /// and a viewer's NACKs map one to one within a stretch on that layer).
    private var videoSequence: UInt16
    private var reducedVideoSequence: UInt16
    private var audioSequence: UInt16
    private let videoTimestampOffset: UInt32
    private let audioTimestampOffset: UInt32
    private let packetizer = H264Packetizer(maxPayloadSize: MediaPacketizer.maxRTPPayloadSize)
    public private(set) var videoHistory: RTPPacketHistory
    public private(set) var reducedVideoHistory: RTPPacketHistory
    public private(set) var lastVideoCaptureTime: MonotonicTime?
    public private(set) var lastAudioCaptureTime: MonotonicTime?

    public init(historyCapacity: Int = 1024, random: inout some RandomNumberGenerator) {
        videoSSRC = UInt32.random(in: 1...UInt32.max, using: &random)
        videoRTXSSRC = UInt32.random(in: 1...UInt32.max, using: &random)
        audioSSRC = UInt32.random(in: 1...UInt32.max, using: &random)
        // RFC 3550 §5.1: initial sequence number and timestamp are random.
        videoSequence = UInt16.random(in: 0...UInt16.max, using: &random)
        reducedVideoSequence = UInt16.random(in: 0...UInt16.max, using: &random)
        audioSequence = UInt16.random(in: 0...UInt16.max, using: &random)
        videoTimestampOffset = UInt32.random(in: 0...UInt32.max, using: &random)
        audioTimestampOffset = UInt32.random(in: 0...UInt32.max, using: &random)
        videoHistory = RTPPacketHistory(capacity: historyCapacity)
        // The reduced layer's packets are a quarter the size of the full one's: fewer of them.
        reducedVideoHistory = RTPPacketHistory(capacity: max(1, historyCapacity / 2))
    }

    /// The history of one video layer's packets.
    public func videoHistory(of layer: VideoLayer) -> RTPPacketHistory {
        layer == .full ? videoHistory : reducedVideoHistory
    }

    /// Frees the reduced layer's history (the reduced encoding stopped).
    public mutating func forgetReducedLayer() {
        reducedVideoHistory.removeAll()
    }

    public func ssrc(of kind: MediaKind) -> UInt32 { kind == .video ? videoSSRC : audioSSRC }

    /// The RTP timestamp of a capture instant: one time base (CLOCK_MONOTONIC) for both streams, so
    /// Sender Reports give browsers lip sync (RFC 3550 §6.4.1).
    public func rtpTimestamp(_ kind: MediaKind, at time: MonotonicTime) -> UInt32 {
        let rate = kind.clockRate
        let seconds = time.nanoseconds / 1_000_000_000
        let fraction = time.nanoseconds % 1_000_000_000
        let ticks = seconds &* rate &+ fraction * rate / 1_000_000_000
        let offset = kind == .video ? videoTimestampOffset : audioTimestampOffset
        return UInt32(truncatingIfNeeded: ticks) &+ offset
    }

    /// An H.264 access unit (Annex-B) of one layer → RTP packets (RFC 6184), stored in that layer's history.
    public mutating func packetizeVideo(accessUnit: [UInt8], isKeyframe: Bool, captureTime: MonotonicTime,
                                        layer: VideoLayer = .full) -> [OutgoingPacket] {
        let timestamp = rtpTimestamp(.video, at: captureTime)
        lastVideoCaptureTime = captureTime
        // Each packet is one array: the packetizer leaves room for the header, written here in place.
        var payloads = packetizer.payloads(forAnnexB: accessUnit, headerRoom: RTPFixedHeader.size)
        var packets: [OutgoingPacket] = []
        packets.reserveCapacity(payloads.count)
        for index in payloads.indices {
            let sequence: UInt16
            switch layer {
            case .full:
                sequence = videoSequence
                videoSequence &+= 1
            case .reduced:
                sequence = reducedVideoSequence
                reducedVideoSequence &+= 1
            }
            var bytes: [UInt8] = []
            swap(&bytes, &payloads[index].payload)   // referenced once now: the header goes in place
            RTPFixedHeader.write(into: &bytes, payloadType: 0, marker: payloads[index].marker, sequenceNumber: sequence,
                                 timestamp: timestamp, ssrc: videoSSRC)
            switch layer {
            case .full: videoHistory.store(bytes, sequenceNumber: sequence)
            case .reduced: reducedVideoHistory.store(bytes, sequenceNumber: sequence)
            }
            packets.append(OutgoingPacket(kind: .video, bytes: bytes, sequenceNumber: sequence, layer: layer,
                                          startsKeyframe: isKeyframe && index == 0, captureTime: captureTime))
        }
        return packets
    }

    /// One Opus frame → one RTP packet (RFC 7587 §4.2). Audio is not retransmitted: Opus in-band FEC
    /// covers single losses and a late audio packet is useless.
    public mutating func packetizeAudio(opusFrame: [UInt8], captureTime: MonotonicTime) -> OutgoingPacket {
        let sequence = audioSequence
        audioSequence &+= 1
        lastAudioCaptureTime = captureTime
        let bytes = RTPFixedHeader.serialized(payloadType: 0, marker: false, sequenceNumber: sequence,
                                              timestamp: rtpTimestamp(.audio, at: captureTime), ssrc: audioSSRC,
                                              payload: OpusPacketizer.payload(forFrame: opusFrame))
        return OutgoingPacket(kind: .audio, bytes: bytes, sequenceNumber: sequence,
                              startsKeyframe: false, captureTime: captureTime)
    }
}

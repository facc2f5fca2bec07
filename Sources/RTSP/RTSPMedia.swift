public import RTCBase
import RTP

/// RTP for RTSP clients, made once per frame for all of them (RFC 3550, RFC 6184 packetization-mode
/// 1, RFC 7587): one SSRC, sequence and timestamp base per stream, shared by every client, like the
/// WebRTC side's MediaPacketizer (plaintext, no SRTP, payload types fixed by RTSPDescription).
public struct RTSPMediaPacketizer: Sendable {
    /// RTP payload size: 1400 keeps a packet with IP/UDP headers under a 1500-byte MTU.
    public static let maxPayloadSize = 1400
    public let videoSSRC: UInt32
    public let audioSSRC: UInt32
    private var videoSequence: UInt16
    private var audioSequence: UInt16
    private let videoTimestampOffset: UInt32
    private let audioTimestampOffset: UInt32
    private let packetizer = H264Packetizer(maxPayloadSize: RTSPMediaPacketizer.maxPayloadSize)
    /// RFC 3550 §6.4.1 sender info: packets and payload octets sent per stream since start.
    public private(set) var videoPackets: UInt32 = 0
    public private(set) var videoOctets: UInt32 = 0
    public private(set) var audioPackets: UInt32 = 0
    public private(set) var audioOctets: UInt32 = 0
    /// The CNAME both streams share (RFC 3550 §6.5.1): receivers synchronize streams with one CNAME.
    public let cname: String

    public init(random: inout some RandomNumberGenerator) {
        videoSSRC = UInt32.random(in: 1...UInt32.max, using: &random)
        audioSSRC = UInt32.random(in: 1...UInt32.max, using: &random)
        videoSequence = UInt16.random(in: 0...UInt16.max, using: &random)
        audioSequence = UInt16.random(in: 0...UInt16.max, using: &random)
        videoTimestampOffset = UInt32.random(in: 0...UInt32.max, using: &random)
        audioTimestampOffset = UInt32.random(in: 0...UInt32.max, using: &random)
        cname = "rtcam-" + String(UInt32.random(in: 0...UInt32.max, using: &random), radix: 16)
    }

    /// A capture instant on a stream's RTP clock (one time base for both: lip sync).
    public func rtpTimestamp(clockRate: UInt64, offset: UInt32, at time: MonotonicTime) -> UInt32 {
        let seconds = time.nanoseconds / 1_000_000_000
        let fraction = time.nanoseconds % 1_000_000_000
        return UInt32(truncatingIfNeeded: seconds &* clockRate &+ fraction * clockRate / 1_000_000_000) &+ offset
    }

    /// An Annex-B access unit → whole RTP packets (header included), the last with the marker.
    public mutating func packetizeVideo(accessUnit: [UInt8], captureTime: MonotonicTime) -> [[UInt8]] {
        let timestamp = rtpTimestamp(clockRate: 90_000, offset: videoTimestampOffset, at: captureTime)
        return packetizer.payloads(forAnnexB: accessUnit, headerRoom: RTPFixedHeader.size).map { payload, marker in
            var packet = payload
            RTPFixedHeader.write(into: &packet, payloadType: RTSPDescription.videoPayloadType, marker: marker,
                                 sequenceNumber: videoSequence, timestamp: timestamp, ssrc: videoSSRC)
            videoSequence &+= 1
            videoPackets &+= 1
            videoOctets &+= UInt32(truncatingIfNeeded: packet.count - RTPFixedHeader.size)
            return packet
        }
    }

    /// One Opus packet → one RTP packet.
    public mutating func packetizeAudio(opusFrame: [UInt8], captureTime: MonotonicTime) -> [UInt8] {
        var packet = [UInt8](repeating: 0, count: RTPFixedHeader.size) + opusFrame
        RTPFixedHeader.write(into: &packet, payloadType: RTSPDescription.audioPayloadType, marker: false,
                             sequenceNumber: audioSequence,
                             timestamp: rtpTimestamp(clockRate: 48_000, offset: audioTimestampOffset, at: captureTime),
                             ssrc: audioSSRC)
        audioSequence &+= 1
        audioPackets &+= 1
        audioOctets &+= UInt32(truncatingIfNeeded: opusFrame.count)
        return packet
    }

    /// A compound RTCP packet for `track` (RFC 3550 §6.1: SR, then SDES with the CNAME): the RTP
    /// timestamp of `now` on the stream's clock beside the wall-clock `ntp` of the same instant, so a
    /// receiver (an NVR recording both) can line audio up with video (§6.4.1).
    public func senderReport(for track: RTSPTrack, now: MonotonicTime, ntp: UInt64) -> [UInt8] {
        let video = track == .video
        let report = SenderReport(ssrc: video ? videoSSRC : audioSSRC, ntpTimestamp: ntp,
                                  rtpTimestamp: rtpTimestamp(clockRate: video ? 90_000 : 48_000,
                                                             offset: video ? videoTimestampOffset : audioTimestampOffset, at: now),
                                  packetCount: video ? videoPackets : audioPackets, octetCount: video ? videoOctets : audioOctets)
        return RTCPPacket.compound([.senderReport(report),
                                    .sourceDescription([SDESChunk(ssrc: video ? videoSSRC : audioSSRC, cname: cname)])])
    }

    /// An RTP or RTCP packet framed for the RTSP TCP connection (RFC 2326 §10.12).
    public static func interleaved(channel: UInt8, packet: [UInt8]) -> [UInt8] {
        var framed: [UInt8] = [0x24, channel, UInt8(truncatingIfNeeded: packet.count >> 8), UInt8(truncatingIfNeeded: packet.count)]
        framed.reserveCapacity(4 + packet.count)
        framed += packet
        return framed
    }
}

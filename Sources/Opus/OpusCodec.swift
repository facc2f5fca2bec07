internal import COpus
public import MediaSources
public import RTCBase

/// Failures of the Opus target; `code` is libopus's error code (OPUS_BAD_ARG = -1 …).
public enum OpusError: Error, Equatable, Sendable {
    case invalidParameters(String)
    case createFailed(code: Int32, message: String)
    case controlFailed(request: String, code: Int32)
    case encodeFailed(code: Int32, message: String)
    case decodeFailed(code: Int32, message: String)
    /// Input PCM not exactly one 20 ms frame (960 samples per channel, interleaved).
    case wrongFrameSize(expected: Int, got: Int)

    static func message(_ code: Int32) -> String {
        guard let text = opus_strerror(code) else { return "opus error \(code)" }
        return String(cString: text)
    }
}

/// What the encoder optimises for (OPUS_SET_APPLICATION at creation).
public enum OpusApplication: Sendable, Equatable {
    /// Speech (SILK/hybrid at low rates): in-band FEC (LBRR) works. rtcam's default for a mic.
    case voip
    /// Music and mixed content.
    case audio
    /// CELT only, 2.5 ms less algorithmic delay; note: CELT has no in-band FEC.
    case restrictedLowDelay

    var code: Int32 {
        switch self {
        case .voip: rtcam_opus_application_voip()
        case .audio: rtcam_opus_application_audio()
        case .restrictedLowDelay: rtcam_opus_application_restricted_lowdelay()
        }
    }
}

/// Opus encoder for WebRTC (RFC 7587): 48 kHz, 20 ms frames (960 samples per channel), in-band FEC
/// on with an expected loss so that LBRR data is actually sent (RFC 6716 §2.1.7).
/// Not thread-safe: one thread at a time (Sendable so it can move to the audio thread).
public final class OpusEncoder: @unchecked Sendable {
    public static let sampleRate = 48_000
    /// 20 ms at 48 kHz.
    public static let frameSamplesPerChannel = 960
    /// Largest packet we accept from the encoder (RFC 6716 §3.2.1 limits a frame to 1275 bytes).
    static let maxPacketBytes = 1500

    public let channels: Int
    public let application: OpusApplication
    public private(set) var bitrate: Int
    /// Samples per channel the encoder delays the signal by (OPUS_GET_LOOKAHEAD).
    public let lookaheadSamples: Int
    private let state: OpaquePointer

    public init(channels: Int = 1, bitrate: Int = 32_000, application: OpusApplication = .voip,
                inbandFEC: Bool = true, expectedPacketLossPercent: Int = 10, complexity: Int = 5) throws(OpusError) {
        guard channels == 1 || channels == 2 else { throw .invalidParameters("channels \(channels)") }
        guard (0 ... 100).contains(expectedPacketLossPercent), (0 ... 10).contains(complexity) else {
            throw .invalidParameters("loss \(expectedPacketLossPercent) %, complexity \(complexity)")
        }
        var error: Int32 = 0
        guard let state = opus_encoder_create(Int32(Self.sampleRate), Int32(channels), application.code, &error),
              error == 0 else {
            throw .createFailed(code: error, message: OpusError.message(error))
        }
        self.state = state
        self.channels = channels
        self.application = application
        self.bitrate = bitrate
        var lookahead: Int32 = 0
        _ = rtcam_opus_encoder_get_lookahead(state, &lookahead)
        self.lookaheadSamples = Int(lookahead)
        try check(rtcam_opus_encoder_set_bitrate(state, Int32(clamping: bitrate)), "OPUS_SET_BITRATE(\(bitrate))")
        try check(rtcam_opus_encoder_set_inband_fec(state, inbandFEC ? 1 : 0), "OPUS_SET_INBAND_FEC")
        try check(rtcam_opus_encoder_set_packet_loss_perc(state, Int32(expectedPacketLossPercent)), "OPUS_SET_PACKET_LOSS_PERC")
        try check(rtcam_opus_encoder_set_complexity(state, Int32(complexity)), "OPUS_SET_COMPLEXITY")
    }

    deinit { opus_encoder_destroy(state) }

    /// Encodes one 20 ms frame: `pcm` holds 960 × channels interleaved samples.
    public func encode(_ pcm: [Int16], captureTime: MonotonicTime) throws(OpusError) -> EncodedAudioFrame {
        let expected = Self.frameSamplesPerChannel * channels
        guard pcm.count == expected else { throw .wrongFrameSize(expected: expected, got: pcm.count) }
        var packet = [UInt8](repeating: 0, count: Self.maxPacketBytes)
        let state = self.state
        let length = pcm.withUnsafeBufferPointer { input in
            packet.withUnsafeMutableBufferPointer { output in
                opus_encode(state, input.baseAddress!, Int32(Self.frameSamplesPerChannel), output.baseAddress!,
                            Int32(output.count))
            }
        }
        guard length > 0 else { throw .encodeFailed(code: length, message: OpusError.message(length)) }
        packet.removeSubrange(Int(length)...)
        return EncodedAudioFrame(packet: packet, captureTime: captureTime, sampleCount: Self.frameSamplesPerChannel)
    }

    /// Target bitrate in bits per second (6000 … 510000), e.g. from congestion feedback.
    public func setBitrate(_ bitsPerSecond: Int) throws(OpusError) {
        try check(rtcam_opus_encoder_set_bitrate(state, Int32(clamping: bitsPerSecond)), "OPUS_SET_BITRATE(\(bitsPerSecond))")
        var actual: Int32 = 0
        _ = rtcam_opus_encoder_get_bitrate(state, &actual)
        bitrate = Int(actual)
    }

    /// Sets the loss the encoder plans FEC for (OPUS_SET_PACKET_LOSS_PERC), e.g. from RTCP fraction lost.
    public func setExpectedPacketLoss(percent: Int) throws(OpusError) {
        try check(rtcam_opus_encoder_set_packet_loss_perc(state, Int32(max(0, min(100, percent)))), "OPUS_SET_PACKET_LOSS_PERC")
    }

    private func check(_ code: Int32, _ request: String) throws(OpusError) {
        guard code == 0 else { throw .controlFailed(request: request, code: code) }
    }
}

/// Opus decoder (tests, load generator): 48 kHz, packets to interleaved S16.
public final class OpusDecoder: @unchecked Sendable {
    public static let sampleRate = 48_000
    /// 120 ms, the longest Opus packet (RFC 6716 §3.2.5).
    static let maxSamplesPerChannel = 5760

    public let channels: Int
    private let state: OpaquePointer

    public init(channels: Int = 1) throws(OpusError) {
        guard channels == 1 || channels == 2 else { throw .invalidParameters("channels \(channels)") }
        var error: Int32 = 0
        guard let state = opus_decoder_create(Int32(Self.sampleRate), Int32(channels), &error), error == 0 else {
            throw .createFailed(code: error, message: OpusError.message(error))
        }
        self.state = state
        self.channels = channels
    }

    deinit { opus_decoder_destroy(state) }

    /// Decodes a packet into interleaved samples. `packet == nil` conceals a lost packet of
    /// `lostSamplesPerChannel` (PLC). `useFEC` decodes the previous (lost) frame from the LBRR data
    /// in this packet (RFC 6716 §4.2.4): call it with the packet after the gap, then again without.
    public func decode(_ packet: [UInt8]?, useFEC: Bool = false, lostSamplesPerChannel: Int = 960) throws(OpusError) -> [Int16] {
        let capacity = packet == nil || useFEC ? max(0, min(lostSamplesPerChannel, Self.maxSamplesPerChannel))
                                               : Self.maxSamplesPerChannel
        guard capacity > 0 else { throw .invalidParameters("lostSamplesPerChannel \(lostSamplesPerChannel)") }
        var pcm = [Int16](repeating: 0, count: capacity * channels)
        let state = self.state
        let decoded: Int32 = pcm.withUnsafeMutableBufferPointer { output in
            if let packet {
                return packet.withUnsafeBufferPointer { input in
                    opus_decode(state, input.baseAddress, Int32(input.count), output.baseAddress!, Int32(capacity),
                                useFEC ? 1 : 0)
                }
            }
            return opus_decode(state, nil, 0, output.baseAddress!, Int32(capacity), 0)
        }
        guard decoded >= 0 else { throw .decodeFailed(code: decoded, message: OpusError.message(decoded)) }
        pcm.removeSubrange((Int(decoded) * channels)...)
        return pcm
    }

    /// Samples per channel a packet decodes to, or nil for an invalid packet (never traps).
    public static func sampleCount(ofPacket packet: [UInt8]) -> Int? {
        guard !packet.isEmpty else { return nil }
        let count = packet.withUnsafeBufferPointer { opus_packet_get_nb_samples($0.baseAddress!, Int32($0.count), Int32(sampleRate)) }
        return count > 0 ? Int(count) : nil
    }
}

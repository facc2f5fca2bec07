internal import CX264
public import MediaSources
internal import RTCBase

/// Failures of the X264 target.
public enum X264Error: Error, Equatable, Sendable {
    /// Not six hex digits (RFC 6184 §8.1 profile-level-id).
    case invalidProfileLevelID(String)
    /// A profile x264 cannot produce here (only Baseline/Constrained Baseline 42xxxx, Main 4dxxxx,
    /// High/Constrained High 64xxxx), or constraint flags it cannot honour for that profile.
    case unsupportedProfile(String)
    /// Width/height odd or not positive, frame rate, bitrate or keyframe interval not positive.
    case invalidParameters(String)
    /// x264_param_default_preset / x264_param_apply_profile / x264_encoder_open refused the settings.
    case rejectedByX264(String)
    /// YUYV (would be coded 4:2:2): convert with `PixelConversion.i420(fromYUYV:)`.
    case unsupportedPixelFormat(PixelFormat)
    /// The frame's size differs from the encoder's.
    case frameSizeMismatch(width: Int, height: Int)
    /// x264_encoder_encode returned an error.
    case encodeFailed(code: Int32)
    /// x264_encoder_reconfig returned an error.
    case reconfigureFailed(code: Int32)
}

/// x264 speed presets that make sense for live encoding on small ARM boards.
public enum X264Preset: String, Sendable, CaseIterable {
    case ultrafast, superfast, veryfast
}

/// A live H.264 encoder (libx264) for WebRTC: one encoder for all viewers.
///
/// Settings: preset + tune "zerolatency" (no lookahead, no frame delay: one picture in, one access
/// unit out), no B-frames, SPS/PPS repeated before every IDR, Annex-B output, ABR with VBV capped at
/// the target bitrate, scene-cut keyframes off (keyframes come from the interval or on request).
/// The SPS profile_idc / constraint flags / level_idc are those of the requested profile-level-id,
/// so the stream matches what the SDP answer said (RFC 6184 §8.1).
///
/// Not thread-safe: call it from one thread (or serial executor) at a time. It is `Sendable` so
/// that the daemon can hand it to its encoding thread.
public final class X264Encoder: @unchecked Sendable {
    public let width: Int
    public let height: Int
    public let frameRate: Int
    public let keyframeInterval: Int
    /// The profile-level-id the stream's SPS carries, lower-case hex, e.g. "42e01f".
    public let profileLevelID: String
    public private(set) var bitrateKbps: Int
    public let vbvBufferMilliseconds: Int
    /// Periodic intra refresh instead of periodic IDRs (see `init`).
    public let intraRefresh: Bool
    /// The caller makes the periodic IDRs (see `init`).
    public let callerSchedulesKeyframes: Bool

    private let handle: OpaquePointer            // x264_t *
    private let requested: ProfileLevel
    private var nextPresentationTimestamp: Int64 = 0
    private var pendingCaptureTimes: [Int64: MonotonicTime] = [:]

    /// - Parameters:
    ///   - profileLevelID: RFC 6184 profile-level-id, e.g. "42e01f" (Constrained Baseline, level 3.1).
    ///   - keyframeInterval: frames between IDRs (i_keyint_max).
    ///   - threads: x264 threads (sliced threads with zerolatency, so no added delay); 1 or 2 on a Pi.
    ///   - vbvBufferMilliseconds: VBV buffer as time at the target bitrate (one frame … 1 s);
    ///     smaller means steadier packets and worse keyframes.
    ///   - maxSliceBytes: if set, slices are cut at that size (one NAL per RTP packet, no FU-A).
    ///   - intraRefresh: x264's periodic intra refresh (`b_intra_refresh`): instead of an IDR every
    ///     `keyframeInterval` frames, a column of intra macroblocks sweeps across the picture once per
    ///     `keyframeInterval`, so no frame is much larger than the others (no keyframe burst on the
    ///     link). Only the first picture is an IDR on its own; `encode(_:forceKeyframe: true)` still
    ///     makes a whole IDR, which a joining viewer's decoder needs (a browser starts at an IDR).
    ///   - callerSchedulesKeyframes: x264 makes no periodic IDR of its own (i_keyint_max infinite): an
    ///     IDR comes only with `encode(_:forceKeyframe: true)`, the caller's schedule
    ///     (CongestionControl's KeyframeSchedule holds the periodic one while a viewer's link
    ///     drains). `keyframeInterval` is then only the caller's. Not with `intraRefresh` (its
    ///     sweep's period is x264's keyint).
    ///   - fullRangeBT601: the pictures are full-range BT.601 YCbCr, as JPEG (JFIF) codes them (a
    ///     camera's MJPEG decoded): the SPS's VUI says so (video_full_range_flag, matrix SMPTE 170M),
    ///     so a decoder does not stretch 0–255 as if it were 16–235. Raw camera formats are limited range.
    public init(width: Int, height: Int, fps: Int, bitrateKbps: Int, profileLevelID: String, keyframeInterval: Int,
                preset: X264Preset = .ultrafast, threads: Int = 1, vbvBufferMilliseconds: Int = 500,
                maxSliceBytes: Int? = nil, intraRefresh: Bool = false, callerSchedulesKeyframes: Bool = false,
                fullRangeBT601: Bool = false) throws(X264Error) {
        guard width > 0, height > 0, width % 2 == 0, height % 2 == 0 else {
            throw .invalidParameters("size \(width)x\(height) (4:2:0 needs even width and height)")
        }
        guard fps > 0, bitrateKbps > 0, keyframeInterval > 0, threads > 0, vbvBufferMilliseconds > 0 else {
            throw .invalidParameters("fps \(fps), bitrate \(bitrateKbps) kb/s, keyint \(keyframeInterval), threads \(threads), vbv \(vbvBufferMilliseconds) ms")
        }
        let requested = try ProfileLevel(parsing: profileLevelID)

        var param = x264_param_t()
        guard x264_param_default_preset(&param, preset.rawValue, "zerolatency") == 0 else {
            throw .rejectedByX264("preset \(preset.rawValue) + tune zerolatency")
        }
        param.i_log_level = rtcam_x264_log_error()
        param.i_threads = Int32(threads)
        param.i_width = Int32(width)
        param.i_height = Int32(height)
        param.i_csp = rtcam_x264_csp_i420()          // 4:2:0; each picture says I420 or NV12 (same internal format)
        param.i_fps_num = UInt32(fps)
        param.i_fps_den = 1
        param.i_timebase_num = 1
        param.i_timebase_den = UInt32(fps)
        param.b_vfr_input = 0
        let schedulesItsOwn = !callerSchedulesKeyframes || intraRefresh
        param.i_keyint_max = schedulesItsOwn ? Int32(keyframeInterval) : Int32(rtcam_x264_keyint_max_infinite())
        param.i_keyint_min = Int32(min(keyframeInterval, max(1, fps)))
        param.i_scenecut_threshold = 0               // keyframes only on the interval or on request (PLI/FIR)
        param.i_bframe = 0
        param.b_intra_refresh = intraRefresh ? 1 : 0
        param.b_repeat_headers = 1                   // SPS/PPS before each IDR: a viewer can join at any keyframe
        param.b_annexb = 1
        param.b_aud = 0
        param.i_level_idc = Int32(requested.x264LevelIDC)
        if let maxSliceBytes { param.i_slice_max_size = Int32(maxSliceBytes) }
        if fullRangeBT601 {
            param.vui.b_fullrange = 1
            param.vui.i_colmatrix = 6                // SMPTE 170M (BT.601), JFIF's YCbCr (H.264 Table E-5)
        }
        Self.applyRateControl(&param, kbps: bitrateKbps, vbvMilliseconds: vbvBufferMilliseconds)

        if requested.toolSet == .high {
            param.analyse.b_transform_8x8 = 1        // the High-only tool that makes x264 write a High SPS
        }
        guard x264_param_apply_profile(&param, requested.toolSet.x264ProfileName) == 0 else {
            throw .rejectedByX264("profile \(requested.toolSet.x264ProfileName)")
        }
        guard let handle = rtcam_x264_encoder_open(&param) else {
            throw .rejectedByX264("x264_encoder_open \(width)x\(height)@\(fps) \(bitrateKbps) kb/s \(profileLevelID)")
        }
        self.handle = handle
        self.requested = requested
        self.width = width
        self.height = height
        self.frameRate = fps
        self.keyframeInterval = keyframeInterval
        self.bitrateKbps = bitrateKbps
        self.vbvBufferMilliseconds = vbvBufferMilliseconds
        self.intraRefresh = intraRefresh
        self.callerSchedulesKeyframes = !schedulesItsOwn
        self.profileLevelID = requested.hex
    }

    deinit {
        x264_encoder_close(handle)
    }

    /// Encodes one picture (I420 or NV12, the encoder's size). `forceKeyframe` makes it an IDR
    /// (with SPS/PPS in front). Returns nil only if x264 held the picture back (it does not with
    /// zerolatency).
    public func encode(_ frame: RawVideoFrame, forceKeyframe: Bool) throws(X264Error) -> EncodedVideoFrame? {
        guard frame.width == width, frame.height == height else {
            throw .frameSizeMismatch(width: frame.width, height: frame.height)
        }
        let colourSpace: Int32
        switch frame.pixelFormat {
        case .i420: colourSpace = rtcam_x264_csp_i420()
        case .nv12: colourSpace = rtcam_x264_csp_nv12()
        case .yuyv: throw .unsupportedPixelFormat(.yuyv)
        }
        let presentationTimestamp = nextPresentationTimestamp
        nextPresentationTimestamp += 1
        pendingCaptureTimes[presentationTimestamp] = frame.captureTime

        let handle = self.handle
        // x264 marks an intra refresh's recovery point as a keyframe too; only an IDR is one here (a
        // joining browser's decoder starts at an IDR).
        let result: (code: Int32, bytes: [UInt8], keyframe: Bool, pts: Int64) = frame.withPlanes { planes in
            var picture = x264_picture_t()
            x264_picture_init(&picture)
            picture.img.i_csp = colourSpace
            picture.img.i_plane = Int32(planes.count)
            // x264 copies the planes into its own frame during x264_encoder_encode and never writes to them.
            func pointer(_ index: Int) -> UnsafeMutablePointer<UInt8>? {
                index < planes.count
                    ? UnsafeMutablePointer(mutating: planes[index].bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
                    : nil
            }
            func stride(_ index: Int) -> Int32 { index < planes.count ? Int32(planes[index].stride) : 0 }
            picture.img.plane = (pointer(0), pointer(1), pointer(2), nil)
            picture.img.i_stride = (stride(0), stride(1), stride(2), 0)
            picture.i_pts = presentationTimestamp
            picture.i_type = forceKeyframe ? rtcam_x264_type_idr() : rtcam_x264_type_auto()

            var nals: UnsafeMutablePointer<x264_nal_t>?
            var nalCount: Int32 = 0
            var output = x264_picture_t()
            let size = x264_encoder_encode(handle, &nals, &nalCount, &picture, &output)
            guard size > 0, let nals, nalCount > 0, let first = nals[0].p_payload else {
                return (size, [], false, 0)
            }
            // The payloads of one call are contiguous in memory (x264.h, x264_encoder_encode).
            var bytes = Array(UnsafeBufferPointer(start: first, count: Int(size)))
            var containsIDR = false
            for index in 0 ..< Int(nalCount) {
                if nals[index].i_type == Int32(H264NALType.idrSlice) { containsIDR = true }
                guard nals[index].i_type == Int32(H264NALType.sequenceParameterSet), let payload = nals[index].p_payload else { continue }
                self.rewriteProfileLevel(inSPSAt: payload - first, of: &bytes)
            }
            return (size, bytes, output.b_keyframe != 0 && containsIDR, output.i_pts)
        }
        if result.code < 0 { throw .encodeFailed(code: result.code) }
        guard !result.bytes.isEmpty else { return nil }
        let captureTime = pendingCaptureTimes.removeValue(forKey: result.pts) ?? frame.captureTime
        if pendingCaptureTimes.count > 64 {                  // never grows with zerolatency; bound it anyway
            pendingCaptureTimes = pendingCaptureTimes.filter { $0.key >= result.pts }
        }
        return EncodedVideoFrame(accessUnit: result.bytes, isKeyframe: result.keyframe, captureTime: captureTime,
                                 width: width, height: height)
    }

    /// Changes the target bitrate (and the VBV cap with it) while running (x264_encoder_reconfig),
    /// e.g. from REMB / transport-cc estimates. Takes effect from the next frame.
    public func setBitrate(kbps: Int) throws(X264Error) {
        guard kbps > 0 else { throw .invalidParameters("bitrate \(kbps) kb/s") }
        var param = x264_param_t()
        x264_encoder_parameters(handle, &param)
        Self.applyRateControl(&param, kbps: kbps, vbvMilliseconds: vbvBufferMilliseconds)
        let code = x264_encoder_reconfig(handle, &param)
        guard code == 0 else { throw .reconfigureFailed(code: code) }
        bitrateKbps = kbps
    }

    /// The VBV buffer that goes with the keyframe choice: with periodic IDRs half a second (a
    /// keyframe may take several frames' worth of bits); with intra refresh two frame intervals, so
    /// that every frame, a forced IDR included, stays near the mean size (what the option is for).
    public static func vbvBufferMilliseconds(framesPerSecond: Int, intraRefresh: Bool) -> Int {
        intraRefresh ? max(1, 2000 / max(1, framesPerSecond)) : 500
    }

    /// The x264 build this was linked against (164 on Debian 12).
    public static var x264Build: Int { Int(rtcam_x264_build()) }

    private static func applyRateControl(_ param: inout x264_param_t, kbps: Int, vbvMilliseconds: Int) {
        param.rc.i_rc_method = rtcam_x264_rc_abr()
        param.rc.i_bitrate = Int32(kbps)
        param.rc.i_vbv_max_bitrate = Int32(kbps)
        param.rc.i_vbv_buffer_size = Int32(max(1, kbps * vbvMilliseconds / 1000))
    }

    /// x264 writes its own profile_idc/constraint flags (ITU-T H.264 §7.3.2.1.1: bytes 1–3 of the SPS
    /// NAL unit); replace them with the requested ones where that is a true statement about the
    /// stream (checked when the request was parsed). These bytes sit between non-zero bytes, so the
    /// rewrite cannot create or break an emulation prevention sequence.
    private func rewriteProfileLevel(inSPSAt offset: Int, of bytes: inout [UInt8]) {
        var header = offset
        while header < bytes.count, bytes[header] == 0 { header += 1 }
        guard header < bytes.count, bytes[header] == 1 else { return }
        header += 1                                          // now at the NAL header byte
        guard header + 3 < bytes.count, bytes[header] & 0x1F == H264NALType.sequenceParameterSet else { return }
        let producedHigh = bytes[header + 1] >= 100
        guard producedHigh == (requested.toolSet == .high) else { return }   // different SPS syntax: leave it
        bytes[header + 1] = requested.profileIDC
        bytes[header + 2] = requested.constraintFlags
        if requested.isLevel1b {
            // Level 1b in Baseline/Main: level_idc 11 with constraint_set3 (§A.3.1).
            bytes[header + 3] = 11
        } else {
            bytes[header + 3] = requested.levelIDC
        }
    }
}

/// A parsed RFC 6184 §8.1 profile-level-id and what x264 must do to produce it.
struct ProfileLevel: Equatable {
    enum ToolSet: Equatable {
        case baseline, main, high
        var x264ProfileName: String {
            switch self {
            case .baseline: "baseline"
            case .main: "main"
            case .high: "high"
            }
        }
    }

    let profileIDC: UInt8
    let constraintFlags: UInt8
    let levelIDC: UInt8
    let toolSet: ToolSet

    var hex: String {
        let digits = Array("0123456789abcdef")
        return String([profileIDC, constraintFlags, levelIDC].flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xF)]] })
    }

    var isLevel1b: Bool { levelIDC == 11 && constraintFlags & 0x10 != 0 && profileIDC != 100 }

    var x264LevelIDC: Int { isLevel1b ? 9 : Int(levelIDC) }

    init(parsing text: String) throws(X264Error) {
        let digits = Array(text.utf8)
        guard digits.count == 6 else { throw .invalidProfileLevelID(text) }
        var bytes: [UInt8] = []
        for pair in stride(from: 0, to: 6, by: 2) {
            guard let high = Self.hexValue(digits[pair]), let low = Self.hexValue(digits[pair + 1]) else {
                throw .invalidProfileLevelID(text)
            }
            bytes.append(high << 4 | low)
        }
        profileIDC = bytes[0]
        constraintFlags = bytes[1]
        levelIDC = bytes[2]
        guard levelIDC >= 9, levelIDC <= 62 else { throw .invalidProfileLevelID(text) }
        switch profileIDC {
        case 66:
            // x264's Baseline stream has no FMO/ASO/redundant slices (so it is also Main-conformant,
            // constraint_set1) and direct_8x8_inference = 1 (Extended-conformant, constraint_set2):
            // every constraint flag combination (42e0 Constrained Baseline, 4200, 42c0 …) is true.
            toolSet = .baseline
        case 77:
            // Main. constraint_set0 (Baseline) or constraint_set2 (Extended) promise no CABAC and no
            // weighted prediction: then encode with Baseline tools (a valid Main stream, e.g. 4de01f).
            toolSet = constraintFlags & 0xA0 != 0 ? .baseline : .main
        case 100:
            // High: the 8x8 transform breaks Baseline/Main/Extended (set0…set2 must be 0); set4
            // (frame_mbs_only) and set5 (no B slices) are true: 640c1f Constrained High is fine.
            guard constraintFlags & 0xE0 == 0 else { throw .unsupportedProfile(text) }
            toolSet = .high
        default:
            throw .unsupportedProfile(text)
        }
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0") ... UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a") ... UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A") ... UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

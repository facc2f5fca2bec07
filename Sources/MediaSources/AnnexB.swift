public import RTCBase

/// H.264 NAL unit types this target cares about (ITU-T H.264 Table 7-1).
public enum H264NALType {
    public static let nonIDRSlice: UInt8 = 1
    public static let idrSlice: UInt8 = 5
    public static let sei: UInt8 = 6
    public static let sequenceParameterSet: UInt8 = 7
    public static let pictureParameterSet: UInt8 = 8
    public static let accessUnitDelimiter: UInt8 = 9
}

/// One NAL unit located in an Annex-B byte stream.
public struct AnnexBNALUnit: Sendable, Equatable {
    /// Where its start code (3 or 4 bytes, the 4th being a leading zero) begins.
    public var startCodeOffset: Int
    /// The NAL unit itself (header byte first), without start code and trailing zero bytes.
    public var range: Range<Int>
    public var type: UInt8
}

/// One access unit cut out of an Annex-B stream, bytes exactly as they were in the stream.
public struct AnnexBAccessUnit: Sendable, Equatable {
    public var bytes: [UInt8]
    /// Holds an IDR slice (decoding can start here).
    public var isIDR: Bool
    /// Holds an SPS (and so usually a PPS): self-contained for a decoder that just joined.
    public var containsSequenceParameterSet: Bool
}

/// Annex-B byte stream (ITU-T H.264 Annex B) → NAL units → access units. Pure code over bytes.
public enum AnnexB {
    /// NAL units in stream order (AnnexBByteStream). Bytes before the first start code are skipped; never traps.
    public static func nalUnits(in stream: [UInt8]) -> [AnnexBNALUnit] {
        AnnexBByteStream.units(in: stream).map { unit in
            AnnexBNALUnit(startCodeOffset: unit.startCodeOffset, range: unit.payload, type: stream[unit.payload.lowerBound] & 0x1F)
        }
    }

    /// Splits a stream into access units (ITU-T H.264 §7.4.1.2.3): a new AU begins at an access
    /// unit delimiter, SPS, PPS, SEI or types 14…18 that follow a slice of the current AU, or at a
    /// slice whose first_mb_in_slice is 0 (a new primary picture) after a slice of the current AU.
    /// An AU's bytes run from its first start code to the next AU's first start code.
    public static func accessUnits(in stream: [UInt8]) -> [AnnexBAccessUnit] {
        let units = nalUnits(in: stream)
        var result: [AnnexBAccessUnit] = []
        var auStart: Int?
        var sawSlice = false
        var isIDR = false
        var hasSPS = false

        func close(at end: Int) {
            if let start = auStart, end > start {
                result.append(AnnexBAccessUnit(bytes: Array(stream[start ..< end]), isIDR: isIDR,
                                               containsSequenceParameterSet: hasSPS))
            }
        }

        for unit in units {
            let type = unit.type
            let isSlice = type == H264NALType.nonIDRSlice || type == H264NALType.idrSlice
            var startsNewAU = false
            if isSlice {
                // first_mb_in_slice is ue(v), the first field of the slice header: value 0 is a single '1' bit.
                let firstMBIsZero = unit.range.count > 1 && stream[unit.range.lowerBound + 1] & 0x80 != 0
                startsNewAU = sawSlice && firstMBIsZero
            } else if type == H264NALType.accessUnitDelimiter || type == H264NALType.sequenceParameterSet
                || type == H264NALType.pictureParameterSet || type == H264NALType.sei || (14 ... 18).contains(type) {
                startsNewAU = sawSlice
            }
            if auStart == nil || startsNewAU {
                close(at: unit.startCodeOffset)
                auStart = unit.startCodeOffset
                sawSlice = false
                isIDR = false
                hasSPS = false
            }
            if isSlice { sawSlice = true }
            if type == H264NALType.idrSlice { isIDR = true }
            if type == H264NALType.sequenceParameterSet { hasSPS = true }
        }
        if let last = units.last { close(at: last.range.upperBound) }
        return result
    }
}

/// The fields of an H.264 sequence parameter set (ITU-T H.264 §7.3.2.1.1) that rtcam needs:
/// profile/constraints/level (to check against the SDP profile-level-id, RFC 6184 §8.1) and the
/// picture size.
public struct H264SequenceParameterSet: Sendable, Equatable {
    public var profileIDC: UInt8
    /// constraint_set0_flag … constraint_set5_flag and the two reserved bits, as in profile-level-id's middle byte.
    public var constraintFlags: UInt8
    public var levelIDC: UInt8
    public var width: Int
    public var height: Int

    /// The RFC 6184 profile-level-id of this SPS, e.g. "42e01f".
    public var profileLevelID: String {
        [profileIDC, constraintFlags, levelIDC].map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
        }.joined()
    }

    /// Parses an SPS NAL unit (header byte first, no start code; emulation prevention bytes in place).
    public init(nalUnit: ArraySlice<UInt8>) throws(MediaSourceError) {
        guard let header = nalUnit.first, header & 0x1F == H264NALType.sequenceParameterSet else {
            throw .malformedBitstream("not an SPS NAL unit")
        }
        var reader = ExpGolombReader(rbsp: Self.removingEmulationPrevention(nalUnit.dropFirst()))
        profileIDC = try reader.bits(8)
        constraintFlags = try reader.bits(8)
        levelIDC = try reader.bits(8)
        _ = try reader.unsignedExpGolomb()                   // seq_parameter_set_id
        var chromaFormat = 1
        var separateColourPlane = false
        if [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].contains(profileIDC) {
            chromaFormat = Int(try reader.unsignedExpGolomb())
            guard chromaFormat <= 3 else { throw .malformedBitstream("chroma_format_idc \(chromaFormat)") }
            if chromaFormat == 3 { separateColourPlane = try reader.flag() }
            _ = try reader.unsignedExpGolomb()               // bit_depth_luma_minus8
            _ = try reader.unsignedExpGolomb()               // bit_depth_chroma_minus8
            _ = try reader.flag()                            // qpprime_y_zero_transform_bypass_flag
            if try reader.flag() {                           // seq_scaling_matrix_present_flag
                for list in 0 ..< (chromaFormat != 3 ? 8 : 12) {
                    if try reader.flag() { try reader.skipScalingList(size: list < 6 ? 16 : 64) }   // §7.3.2.1.1.1
                }
            }
        }
        _ = try reader.unsignedExpGolomb()                   // log2_max_frame_num_minus4
        let pocType = try reader.unsignedExpGolomb()
        if pocType == 0 {
            _ = try reader.unsignedExpGolomb()               // log2_max_pic_order_cnt_lsb_minus4
        } else if pocType == 1 {
            _ = try reader.flag()                            // delta_pic_order_always_zero_flag
            _ = try reader.signedExpGolomb()                 // offset_for_non_ref_pic
            _ = try reader.signedExpGolomb()                 // offset_for_top_to_bottom_field
            let cycle = try reader.unsignedExpGolomb()
            guard cycle <= 255 else { throw .malformedBitstream("num_ref_frames_in_pic_order_cnt_cycle \(cycle)") }
            for _ in 0 ..< cycle { _ = try reader.signedExpGolomb() }
        } else if pocType > 2 {
            throw .malformedBitstream("pic_order_cnt_type \(pocType)")
        }
        _ = try reader.unsignedExpGolomb()                   // max_num_ref_frames
        _ = try reader.flag()                                // gaps_in_frame_num_value_allowed_flag
        let widthInMBs = Int(try reader.unsignedExpGolomb()) + 1
        let heightInMapUnits = Int(try reader.unsignedExpGolomb()) + 1
        let frameMBsOnly = try reader.flag()
        if !frameMBsOnly { _ = try reader.flag() }           // mb_adaptive_frame_field_flag
        _ = try reader.flag()                                // direct_8x8_inference_flag
        var crop = (left: 0, right: 0, top: 0, bottom: 0)
        if try reader.flag() {
            crop = (Int(try reader.unsignedExpGolomb()), Int(try reader.unsignedExpGolomb()),
                    Int(try reader.unsignedExpGolomb()), Int(try reader.unsignedExpGolomb()))
        }
        // §7.4.2.1.1: CropUnitX/Y from ChromaArrayType, SubWidthC/SubHeightC and frame_mbs_only_flag.
        let chromaArrayType = separateColourPlane ? 0 : chromaFormat
        let subWidth = chromaFormat == 3 ? 1 : 2
        let subHeight = chromaFormat == 1 ? 2 : 1
        let cropUnitX = chromaArrayType == 0 ? 1 : subWidth
        let cropUnitY = (chromaArrayType == 0 ? 1 : subHeight) * (frameMBsOnly ? 1 : 2)
        let fullWidth = widthInMBs * 16
        let fullHeight = heightInMapUnits * 16 * (frameMBsOnly ? 1 : 2)
        width = fullWidth - cropUnitX * (crop.left + crop.right)
        height = fullHeight - cropUnitY * (crop.top + crop.bottom)
        guard width > 0, height > 0 else { throw .malformedBitstream("cropping exceeds the picture") }
    }

    /// NAL payload → RBSP: drop the 03 of every 00 00 03 (§7.4.1).
    static func removingEmulationPrevention(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var rbsp: [UInt8] = []
        rbsp.reserveCapacity(bytes.count)
        var zeros = 0
        for byte in bytes {
            if zeros >= 2, byte == 3 { zeros = 0; continue }
            zeros = byte == 0 ? zeros + 1 : 0
            rbsp.append(byte)
        }
        return rbsp
    }
}

/// Bit reader for RBSP fields: u(n), ue(v), se(v) (ITU-T H.264 §9.1). Throws at the end of data.
struct ExpGolombReader {
    let rbsp: [UInt8]
    var bitOffset = 0

    init(rbsp: [UInt8]) { self.rbsp = rbsp }

    mutating func flag() throws(MediaSourceError) -> Bool {
        guard bitOffset < rbsp.count * 8 else { throw .malformedBitstream("SPS truncated") }
        defer { bitOffset += 1 }
        return rbsp[bitOffset >> 3] & (0x80 >> UInt8(bitOffset & 7)) != 0
    }

    mutating func bits<T: FixedWidthInteger>(_ count: Int) throws(MediaSourceError) -> T {
        var value: T = 0
        for _ in 0 ..< count { value = value << 1 | (try flag() ? 1 : 0) }
        return value
    }

    mutating func unsignedExpGolomb() throws(MediaSourceError) -> UInt32 {
        var leadingZeros = 0
        while try !flag() {
            leadingZeros += 1
            guard leadingZeros < 32 else { throw .malformedBitstream("exp-Golomb code longer than 32 bits") }
        }
        let suffix: UInt64 = try bits(leadingZeros)
        return UInt32(clamping: (UInt64(1) << UInt64(leadingZeros)) - 1 + suffix)
    }

    mutating func signedExpGolomb() throws(MediaSourceError) -> Int32 {
        let code = Int64(try unsignedExpGolomb())
        return Int32(clamping: code % 2 == 1 ? (code + 1) / 2 : -(code / 2))
    }

    mutating func skipScalingList(size: Int) throws(MediaSourceError) {
        var last = 8, next = 8
        for _ in 0 ..< size where next != 0 {
            let delta = Int(try signedExpGolomb())
            next = ((last + delta) % 256 + 256) % 256
            if next != 0 { last = next }
        }
    }
}

/// Plays an H.264 Annex-B stream (e.g. a recorded file) as a camera: access units in a loop at a
/// fixed frame rate, starting at the first IDR. Pure: the file I/O lives with the caller, which
/// hands over the bytes; the capture time comes in with each call.
public struct AnnexBFileSource: Sendable {
    public let accessUnits: [AnnexBAccessUnit]
    public let frameRate: Int
    public let width: Int
    public let height: Int
    /// The first SPS of the stream (for the SDP profile-level-id).
    public let sequenceParameterSet: H264SequenceParameterSet
    private var nextIndex = 0

    public init(stream: [UInt8], frameRate: Int) throws(MediaSourceError) {
        guard frameRate > 0 else { throw .malformedBitstream("frame rate \(frameRate)") }
        let all = AnnexB.accessUnits(in: stream)
        guard let firstIDR = all.firstIndex(where: { $0.isIDR && $0.containsSequenceParameterSet }) else {
            throw .noDecodableAccessUnit
        }
        let playable = Array(all[firstIDR...])
        var sps: H264SequenceParameterSet?
        for unit in AnnexB.nalUnits(in: playable[0].bytes) where unit.type == H264NALType.sequenceParameterSet {
            sps = try H264SequenceParameterSet(nalUnit: playable[0].bytes[unit.range])
            break
        }
        guard let sps else { throw .noDecodableAccessUnit }
        accessUnits = playable
        self.frameRate = frameRate
        sequenceParameterSet = sps
        width = sps.width
        height = sps.height
    }

    /// Time between two frames.
    public var frameInterval: Duration { .nanoseconds(1_000_000_000 / Int64(frameRate)) }

    /// The next access unit, stamped with `captureTime`; wraps to the first IDR at the end.
    /// (A restart at an IDR with SPS/PPS is a clean decoder refresh for every viewer.)
    public mutating func nextFrame(captureTime: MonotonicTime) -> EncodedVideoFrame {
        let unit = accessUnits[nextIndex]
        nextIndex = (nextIndex + 1) % accessUnits.count
        return EncodedVideoFrame(accessUnit: unit.bytes, isKeyframe: unit.isIDR, captureTime: captureTime,
                                 width: width, height: height)
    }

    /// Jump to the next IDR (a viewer sent PLI/FIR and the file cannot make a new keyframe).
    public mutating func skipToNextKeyframe() {
        if let next = accessUnits[nextIndex...].firstIndex(where: \.isIDR) {
            nextIndex = next
        } else {
            nextIndex = 0
        }
    }
}

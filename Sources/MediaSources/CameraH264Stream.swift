public import RTCBase

/// Makes a camera's own H.264 fit for WebRTC viewers (the passthrough path): each access unit the
/// camera delivers becomes an `EncodedVideoFrame`, and every IDR carries the SPS and PPS in front,
/// because a viewer that joins late can only start decoding at an IDR that says how to decode it
/// (RFC 6184 §8.4 leaves parameter sets to the sender; many UVC cameras send them only once, at
/// stream start). Pure code over bytes: the V4L2 side hands buffers in.
public struct CameraH264Stream: Sendable {
    /// The newest SPS and PPS NAL units seen (header byte first, no start code).
    public private(set) var sequenceParameterSet: [UInt8]?
    public private(set) var pictureParameterSet: [UInt8]?
    /// IDRs that arrived before any SPS/PPS: not decodable by a viewer, so dropped.
    public private(set) var idrsWithoutParameterSets = 0
    /// Buffers with no slice at all (a camera's header-only buffer, or garbage).
    public private(set) var buffersWithoutPicture = 0

    public init() {}

    /// The SPS's fields (profile-level-id for the SDP answer, picture size) once one was seen.
    public var parsedSequenceParameterSet: H264SequenceParameterSet? {
        guard let sps = sequenceParameterSet else { return nil }
        return try? H264SequenceParameterSet(nalUnit: sps[...])
    }

    /// One buffer from the camera (one access unit in Annex-B form) → a frame for the viewers, or
    /// nil when it holds nothing a viewer can use yet (no picture, or an IDR before parameter sets).
    public mutating func frame(fromBuffer bytes: UnsafeRawBufferPointer, captureTime: MonotonicTime,
                               width: Int, height: Int) -> EncodedVideoFrame? {
        let stream = Array(bytes)
        let units = AnnexB.nalUnits(in: stream)
        var hasIDR = false
        var hasSlice = false
        var carriesSPS = false
        var carriesPPS = false
        for unit in units {
            switch unit.type {
            case H264NALType.sequenceParameterSet:
                sequenceParameterSet = Array(stream[unit.range])
                carriesSPS = true
            case H264NALType.pictureParameterSet:
                pictureParameterSet = Array(stream[unit.range])
                carriesPPS = true
            case H264NALType.idrSlice:
                hasIDR = true
                hasSlice = true
            case H264NALType.nonIDRSlice:
                hasSlice = true
            default:
                break
            }
        }
        guard hasSlice else {
            buffersWithoutPicture += 1
            return nil
        }
        guard hasIDR, !(carriesSPS && carriesPPS) else {
            return EncodedVideoFrame(accessUnit: stream, isKeyframe: hasIDR, captureTime: captureTime, width: width, height: height)
        }
        guard let sps = sequenceParameterSet, let pps = pictureParameterSet else {
            idrsWithoutParameterSets += 1
            return nil
        }
        // Parameter sets first, then the access unit without any it carried (no duplicates).
        var accessUnit: [UInt8] = []
        accessUnit.reserveCapacity(stream.count + sps.count + pps.count + 8)
        for parameterSet in [sps, pps] {
            accessUnit += [0, 0, 0, 1]
            accessUnit += parameterSet
        }
        for unit in units where unit.type != H264NALType.sequenceParameterSet && unit.type != H264NALType.pictureParameterSet {
            accessUnit += [0, 0, 0, 1]
            accessUnit += stream[unit.range]
        }
        return EncodedVideoFrame(accessUnit: accessUnit, isKeyframe: true, captureTime: captureTime, width: width, height: height)
    }
}

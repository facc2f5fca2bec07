public import RTCBase

/// Cuts an H.264 Annex-B byte stream that arrives in arbitrary pieces (a program's stdout, a pipe)
/// into access units, the unit a viewer's frame is made of. Pure code over bytes: the reader hands
/// in what it read and says when the stream went quiet.
///
/// Where an access unit ends (ITU-T H.264 §7.4.1.2.3): before an access unit delimiter, SPS, PPS or
/// SEI that follows a picture's slices, and before a slice whose first_mb_in_slice is 0 (the first
/// slice of the next picture). A NAL unit is known complete only when the next start code arrives,
/// so a picture would wait for the next one; writers such as `rpicam-vid --flush` and FFmpeg write a
/// picture and then pause until the next, so `streamWentQuiet()` (the reader saw no bytes for a
/// few milliseconds) completes the pending picture early.
///
/// Bytes before the first start code are dropped (counted); a unit larger than `maximumUnitBytes`
/// is dropped whole (garbage without start codes would otherwise grow without bound).
public struct AccessUnitSplitter: Sendable {
    /// The largest access unit kept (a 1080p IDR at a high bitrate is well under 2 MB).
    public let maximumUnitBytes: Int
    /// Bytes not yet part of a finished access unit: the current picture's NAL units, start codes
    /// included, then the unit being read.
    private var pending: [UInt8] = []
    /// Where in `pending` the NAL units of the current access unit start, with their types.
    private var units: [(offset: Int, type: UInt8)] = []
    /// How far `pending` was scanned for start codes.
    private var scanned = 0
    /// Whether the current access unit has a slice (then a new picture ends it).
    private var hasSlice = false
    public private(set) var bytesDiscarded = 0
    public private(set) var oversizedUnitsDropped = 0

    public init(maximumUnitBytes: Int = 4 << 20) {
        self.maximumUnitBytes = maximumUnitBytes
    }

    /// Appends bytes read from the stream; returns the access units they completed (Annex-B, start
    /// codes included), oldest first.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) -> [[UInt8]] {
        pending.append(contentsOf: bytes)
        var finished: [[UInt8]] = []
        scan(into: &finished)
        if pending.count > maximumUnitBytes {
            // One unit (or a picture) this large is garbage or a stream rtcam cannot send: drop all.
            oversizedUnitsDropped += 1
            bytesDiscarded += pending.count
            reset()
        }
        return finished
    }

    /// The reader saw no new bytes for a while: the picture read so far is taken as complete.
    public mutating func streamWentQuiet() -> [UInt8]? {
        guard hasSlice, let first = units.first else { return nil }
        let unit = Array(pending[first.offset...])
        reset()
        return unit
    }

    /// Forgets everything pending (the program was restarted).
    public mutating func reset() {
        pending.removeAll(keepingCapacity: pending.count <= 1 << 20)
        units.removeAll(keepingCapacity: true)
        scanned = 0
        hasSlice = false
    }

    private mutating func scan(into finished: inout [[UInt8]]) {
        // A start code is 00 00 01. What it begins is decided by the unit's header byte and, for a
        // slice, the byte after it: a start code is taken only once both have arrived.
        var index = max(scanned, 2)
        var cut = 0   // bytes of `pending` handed out in `finished`, removed at the end
        while index + 2 < pending.count {
            let byte = pending[index]
            if byte > 1 {
                index += 3
                continue
            }
            if byte == 0 {
                index += 1
                continue
            }
            guard pending[index - 1] == 0, pending[index - 2] == 0 else {
                index += 3
                continue
            }
            let startCode = index >= 3 && pending[index - 3] == 0 && index - 3 >= cut ? index - 3 : index - 2
            let header = pending[index + 1]
            let type = header & 0x1F
            if units.isEmpty && cut == 0 && startCode > 0 && !hasSlice {
                bytesDiscarded += startCode   // junk before the first start code
                pending.removeFirst(startCode)
                index -= startCode
                scanned = 0
                continue
            }
            if endsAccessUnit(type: type, startCode: startCode, headerIndex: index + 1), let first = units.first {
                finished.append(Array(pending[first.offset ..< startCode]))
                units.removeAll(keepingCapacity: true)
                hasSlice = false
                cut = startCode
            }
            units.append((startCode, type))
            if type == H264NALType.idrSlice || type == H264NALType.nonIDRSlice { hasSlice = true }
            index += 3
        }
        if cut > 0 {
            pending.removeFirst(cut)
            for i in units.indices { units[i].offset -= cut }
            index -= cut
        }
        scanned = max(0, min(index, pending.count) - 2)
    }

    /// Whether a NAL unit of `type` starting here begins the next access unit.
    private func endsAccessUnit(type: UInt8, startCode: Int, headerIndex: Int) -> Bool {
        guard hasSlice else { return false }
        switch type {
        case 6, 7, 8, 9: return true   // SEI, SPS, PPS, access unit delimiter after a picture
        case H264NALType.idrSlice, H264NALType.nonIDRSlice:
            // first_mb_in_slice is ue(v): 0 is the single bit 1, so the first slice of a picture
            // starts with a set top bit (the scan waited for this byte).
            return pending[headerIndex + 1] & 0x80 != 0
        default:
            return false
        }
    }
}

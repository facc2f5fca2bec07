import RTCBase

/// One viewer's view of the camera's two video layers (issue 24): it is on one layer at a time and
/// sees one continuous stream whatever the layer, with one SSRC, sequence numbers without a gap or
/// a repeat at a switch, and timestamps that keep increasing.
///
/// The owner sets `target`; the switch happens at the first packet of a keyframe of the target
/// layer (the owner asks that layer's encoder for one), never inside a frame. At the switch the
/// viewer's sequence numbers continue from the last one sent: the new layer gets an offset (its
/// number + offset = the viewer's). Both layers share one timestamp base (the capture clock), so
/// the timestamp needs a shift only when the target's keyframe is of the very picture the viewer
/// last got (both encoders take the same captures): then it goes one tick (11 µs) past it.
///
/// Each stretch on one layer is remembered (a few of them), so that a NACK for the viewer's number
/// finds the layer and the layer's number to resend (`original(of:)`). Sans-IO, a value.
public struct VideoLayerRewriter: Sendable, Equatable {
    /// The layer the owner wants this viewer on.
    public var target: VideoLayer = .full
    /// The layer the viewer is on (nil: no video sent yet).
    public private(set) var current: VideoLayer?
    /// Switches made (the first start not counted).
    public private(set) var switches = 0

    /// A stretch of the viewer's stream on one layer, from `firstSequenceNumber` (the viewer's).
    struct Stretch: Sendable, Equatable {
        /// The viewer's first number on it, unwrapped (counted from the viewer's first packet).
        var firstIndex: UInt64
        var layer: VideoLayer
        /// Layer number + offset = the viewer's number (mod 2^16).
        var sequenceOffset: UInt16
        var timestampShift: UInt32
    }

    /// Newest last; at most `maximumStretches` (a NACK older than the oldest finds nothing, as one
    /// for a packet gone from the history does).
    private(set) var stretches: [Stretch] = []
    static let maximumStretches = 8
    private var lastSequenceNumber: UInt16?
    /// `lastSequenceNumber` unwrapped: a viewer may stay on one layer for far more than 65,536 packets.
    private var lastIndex: UInt64 = 0
    private var lastTimestamp: UInt32?

    public init(target: VideoLayer = .full) {
        self.target = target
    }

    /// Whether a switch is wanted and not made yet (the viewer waits for the target's keyframe).
    public var isSwitching: Bool { current != nil && current != target }

    /// What to do with one video packet of `layer` (its number and timestamp as packetized), given
    /// whether the viewer may take a P-frame now (`restartsOnlyAtKeyframe`: none sent yet, or the
    /// pacer dropped stale video): nil, skip it; else the viewer's number and the timestamp shift.
    public mutating func accept(layer: VideoLayer, sequenceNumber: UInt16, timestamp: UInt32, startsKeyframe: Bool,
                                restartsOnlyAtKeyframe: Bool) -> (sequenceNumber: UInt16, timestampShift: UInt32)? {
        if layer == target, startsKeyframe, current != target {
            begin(layer, sequenceNumber: sequenceNumber, timestamp: timestamp)
        } else if layer != current || (restartsOnlyAtKeyframe && !startsKeyframe) {
            return nil
        }
        guard let stretch = stretches.last else { return nil }
        let rewritten = sequenceNumber &+ stretch.sequenceOffset
        // Within a layer numbers only go forward (a packet the viewer skipped leaves a gap).
        if let last = lastSequenceNumber { lastIndex &+= UInt64(rewritten &- last) }
        lastSequenceNumber = rewritten
        lastTimestamp = timestamp &+ stretch.timestampShift
        return (rewritten, stretch.timestampShift)
    }

    private mutating func begin(_ layer: VideoLayer, sequenceNumber: UInt16, timestamp: UInt32) {
        if current != nil { switches += 1 }
        current = layer
        let first = lastSequenceNumber.map { $0 &+ 1 } ?? sequenceNumber
        let firstIndex = lastSequenceNumber == nil ? 0 : lastIndex + 1
        var shift: UInt32 = 0
        // Not after the last timestamp sent (the same picture, or an earlier one): one tick past it.
        if let lastTimestamp, Int32(bitPattern: timestamp &- lastTimestamp) <= 0 {
            shift = lastTimestamp &+ 1 &- timestamp
        }
        stretches.append(Stretch(firstIndex: firstIndex, layer: layer, sequenceOffset: first &- sequenceNumber,
                                 timestampShift: shift))
        if stretches.count > Self.maximumStretches { stretches.removeFirst() }
    }

    /// The packet behind the viewer's number `sequenceNumber` (from a NACK): its layer, the
    /// layer's number (the history's key) and the timestamp shift the viewer saw it with; nil for
    /// a number not sent yet or older than the stretches remembered.
    public func original(of sequenceNumber: UInt16) -> (layer: VideoLayer, sequenceNumber: UInt16, timestampShift: UInt32)? {
        guard let last = lastSequenceNumber else { return nil }
        // Distances back from the newest number sent: a NACK names numbers at or before it.
        let back = UInt64(last &- sequenceNumber)
        guard back < 0x8000, back <= lastIndex else { return nil }
        let index = lastIndex - back
        guard let stretch = stretches.last(where: { $0.firstIndex <= index }) else { return nil }
        return (stretch.layer, sequenceNumber &- stretch.sequenceOffset, stretch.timestampShift)
    }
}

import RTCBase
import Testing
@testable import WebRTCSession

/// A viewer moved between the two video layers (issue 24) sees one stream: its numbers continue
/// without a gap or a repeat, timestamps keep increasing, and NACKs find the layer's packet.
@Suite struct VideoLayerRewriterTests {
    /// One layer's packet series as a packetizer makes it: numbers from `first`, a frame of
    /// `packetsPerFrame` packets every 3,000 ticks (30 fps), a keyframe where asked.
    struct Layer {
        var layer: VideoLayer
        var next: UInt16
        var timestampBase: UInt32

        /// A frame's packets: (number, timestamp, starts a keyframe).
        mutating func frame(_ index: Int, packets: Int, keyframe: Bool) -> [(UInt16, UInt32, Bool)] {
            let timestamp = timestampBase &+ UInt32(index) &* 3000
            return (0 ..< packets).map { offset in
                defer { next &+= 1 }
                return (next, timestamp, keyframe && offset == 0)
            }
        }
    }

    /// Feeds both layers' frame `index` (full first, as the daemon sends them) and returns what the
    /// viewer got: (viewer's number, timestamp it sees, layer, layer's number).
    static func send(_ index: Int, full: inout Layer, reduced: inout Layer, fullKeyframe: Bool = false,
                     reducedKeyframe: Bool = false, into rewriter: inout VideoLayerRewriter,
                     restarts: Bool = false) -> [(UInt16, UInt32, VideoLayer, UInt16)] {
        var seen: [(UInt16, UInt32, VideoLayer, UInt16)] = []
        for (source, keyframe) in [(0, fullKeyframe), (1, reducedKeyframe)] {
            let packets = source == 0 ? full.frame(index, packets: 3, keyframe: keyframe)
                                      : reduced.frame(index, packets: 1, keyframe: keyframe)
            let layer: VideoLayer = source == 0 ? .full : .reduced
            for (number, timestamp, starts) in packets {
                if let out = rewriter.accept(layer: layer, sequenceNumber: number, timestamp: timestamp,
                                             startsKeyframe: starts, restartsOnlyAtKeyframe: restarts && seen.isEmpty) {
                    seen.append((out.sequenceNumber, timestamp &+ out.timestampShift, layer, number))
                }
            }
        }
        return seen
    }

    @Test func switchesDownAndUpAtKeyframesWithoutAGapOrARepeat() {
        // The layers' series are far apart and the full one wraps past 65535 during the run.
        var full = Layer(layer: .full, next: 65_530, timestampBase: 4_000_000_000)
        var reduced = Layer(layer: .reduced, next: 1_000, timestampBase: 4_000_000_000)
        var rewriter = VideoLayerRewriter()
        var seen: [(UInt16, UInt32, VideoLayer, UInt16)] = []
        seen += Self.send(0, full: &full, reduced: &reduced, fullKeyframe: true, reducedKeyframe: true, into: &rewriter)
        for index in 1 ..< 5 { seen += Self.send(index, full: &full, reduced: &reduced, into: &rewriter) }
        // Down: wanted now, no reduced keyframe yet: the viewer stays on the full layer meanwhile.
        rewriter.target = .reduced
        #expect(rewriter.isSwitching)
        for index in 5 ..< 7 { seen += Self.send(index, full: &full, reduced: &reduced, into: &rewriter) }
        #expect(rewriter.current == .full)
        seen += Self.send(7, full: &full, reduced: &reduced, reducedKeyframe: true, into: &rewriter)
        #expect(rewriter.current == .reduced)
        for index in 8 ..< 12 { seen += Self.send(index, full: &full, reduced: &reduced, into: &rewriter) }
        // Up: the full layer's keyframe comes first in frame 12 (before the reduced picture of it).
        rewriter.target = .full
        seen += Self.send(12, full: &full, reduced: &reduced, fullKeyframe: true, into: &rewriter)
        for index in 13 ..< 15 { seen += Self.send(index, full: &full, reduced: &reduced, into: &rewriter) }
        #expect(rewriter.current == .full)
        #expect(rewriter.switches == 2)

        // Frames 0-7 full (3 packets each: frame 7's full picture goes before its reduced keyframe),
        // 7-11 reduced (1 each), 12-14 full: 24 + 5 + 9 packets.
        #expect(seen.map(\.2) == Array(repeating: .full, count: 24) + Array(repeating: .reduced, count: 5)
                + Array(repeating: .full, count: 9))
        for (previous, next) in zip(seen, seen.dropFirst()) {
            #expect(next.0 == previous.0 &+ 1, "viewer numbers \(previous.0) then \(next.0)")
            #expect(Int32(bitPattern: next.1 &- previous.1) >= 0, "timestamps \(previous.1) then \(next.1)")
        }
        // Down: the reduced keyframe is frame 7's picture, which the viewer just had in full: one
        // tick past it. Up: the full keyframe of frame 12 is a later picture: no shift.
        #expect(seen[23].1 == UInt32(4_000_000_000 + 7 * 3000))
        #expect(seen[24].1 == UInt32(4_000_000_000 + 7 * 3000 + 1))
        #expect(seen[29].1 == UInt32(4_000_000_000 + 12 * 3000))
        // Every number maps back to the layer and its number (what a NACK resends).
        for (viewer, _, layer, original) in seen {
            let source = rewriter.original(of: viewer)
            #expect(source?.layer == layer && source?.sequenceNumber == original, "viewer \(viewer)")
        }
        // Numbers not sent yet, or far behind, find nothing.
        #expect(rewriter.original(of: seen.last!.0 &+ 1) == nil)
        #expect(rewriter.original(of: seen.first!.0 &- 1) == nil)
    }

    @Test func aKeyframeOfThePictureAlreadySentGoesOneTickPastIt() {
        // Down at frame 3: the viewer had the full layer's frame 3; the reduced keyframe is the same
        // picture (same capture, same timestamp): it must not reuse that timestamp.
        var full = Layer(layer: .full, next: 100, timestampBase: 0xFFFF_F000)   // wraps the timestamp too
        var reduced = Layer(layer: .reduced, next: 9, timestampBase: 0xFFFF_F000)
        var rewriter = VideoLayerRewriter()
        var seen = Self.send(0, full: &full, reduced: &reduced, fullKeyframe: true, into: &rewriter)
        for index in 1 ..< 3 { seen += Self.send(index, full: &full, reduced: &reduced, into: &rewriter) }
        rewriter.target = .reduced
        seen += Self.send(3, full: &full, reduced: &reduced, reducedKeyframe: true, into: &rewriter)
        for index in 4 ..< 6 { seen += Self.send(index, full: &full, reduced: &reduced, into: &rewriter) }
        let lastFull = seen.lastIndex { $0.2 == .full }!
        #expect(seen[lastFull].1 == UInt32(0xFFFF_F000) &+ 3 * 3000)
        #expect(seen[lastFull + 1].1 == seen[lastFull].1 &+ 1, "the reduced keyframe one tick after")
        #expect(seen[lastFull + 2].1 == UInt32(0xFFFF_F000) &+ 4 * 3000 &+ 1, "the shift stays on the layer")
        for (previous, next) in zip(seen, seen.dropFirst()) {
            #expect(next.0 == previous.0 &+ 1)
            #expect(Int32(bitPattern: next.1 &- previous.1) >= 0)
        }
        #expect(rewriter.original(of: seen[lastFull + 2].0)?.timestampShift == 1)
        #expect(rewriter.original(of: seen[lastFull].0)?.timestampShift == 0)
    }

    @Test func waitsForAKeyframeWhenTheViewerMustRestart() {
        var full = Layer(layer: .full, next: 0, timestampBase: 0)
        var reduced = Layer(layer: .reduced, next: 0, timestampBase: 0)
        var rewriter = VideoLayerRewriter()
        // Nothing before the first keyframe of the wanted layer; the other layer's keyframe is no start.
        #expect(Self.send(0, full: &full, reduced: &reduced, reducedKeyframe: true, into: &rewriter).isEmpty)
        #expect(rewriter.current == nil)
        #expect(Self.send(1, full: &full, reduced: &reduced, fullKeyframe: true, into: &rewriter).count == 3)
        // Stale video dropped (the session restarts at a keyframe): P-frames are skipped meanwhile,
        // and the numbering of the same layer keeps its offset (the gap is the packets dropped).
        #expect(Self.send(2, full: &full, reduced: &reduced, into: &rewriter, restarts: true).isEmpty)
        let restart = Self.send(3, full: &full, reduced: &reduced, fullKeyframe: true, into: &rewriter, restarts: true)
        #expect(restart.first?.0 == 9, "layer number 9 is still the viewer's 9 (6-8 skipped)")
        #expect(rewriter.switches == 0)
    }

    @Test func mapsNACKsAfterMoreThanASequenceSpaceOnOneLayer() {
        var full = Layer(layer: .full, next: 0, timestampBase: 0)
        var reduced = Layer(layer: .reduced, next: 500, timestampBase: 0)
        var rewriter = VideoLayerRewriter()
        rewriter.target = .reduced
        _ = Self.send(0, full: &full, reduced: &reduced, reducedKeyframe: true, into: &rewriter)
        rewriter.target = .full
        _ = Self.send(1, full: &full, reduced: &reduced, fullKeyframe: true, into: &rewriter)
        // 70,000 packets on the full layer: more than the 16-bit space.
        var last: [(UInt16, UInt32, VideoLayer, UInt16)] = []
        for index in 2 ..< 23_336 { last = Self.send(index, full: &full, reduced: &reduced, into: &rewriter) }
        let newest = last.last!
        #expect(rewriter.original(of: newest.0)?.sequenceNumber == newest.3)
        #expect(rewriter.original(of: newest.0 &- 1000)?.layer == .full)
        #expect(rewriter.original(of: newest.0 &- 1000)?.sequenceNumber == newest.3 &- 1000)
    }
}

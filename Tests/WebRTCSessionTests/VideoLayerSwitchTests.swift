import RTCBase
import RTP
import Testing
@testable import WebRTCSession

/// A viewer's session moved between the two video layers (issue 24) through real SRTP on the
/// simulated network: the viewer's decoder gets every access unit of the layer it is on, whole,
/// from one SSRC with continuous numbers, and NACKs across a switch resend the right packets.
@Suite struct VideoLayerSwitchTests {
    /// The camera's first transmissions of video as the network saw them (SRTP leaves the RTP
    /// header in the clear): SSRC, number, timestamp.
    final class Tap {
        var packets: [(ssrc: UInt32, sequenceNumber: UInt16, timestamp: UInt32)] = []
    }

    static func tapVideo(_ harness: TwoPeerHarness, payloadType: UInt8) -> Tap {
        let tap = Tap()
        harness.network.dropRule = { datagram in
            let bytes = datagram.bytes
            guard datagram.from == TwoPeerHarness.cameraAddress, bytes.count >= 12, (128...191).contains(bytes[0]),
                  bytes[1] & 0x7F == payloadType else { return false }
            let header = RTPFixedHeader.sequenceNumberAndTimestamp(ofPacket: bytes)
            let ssrc = UInt32(bytes[8]) << 24 | UInt32(bytes[9]) << 16 | UInt32(bytes[10]) << 8 | UInt32(bytes[11])
            tap.packets.append((ssrc, header.sequenceNumber, header.timestamp))
            return false
        }
        return tap
    }

    /// What the viewer's depacketizer gave, each found among the access units sent: (layer, index
    /// in the layer, keyframe); nil for one that matches none (a resend of the wrong packet).
    static func received(_ harness: TwoPeerHarness) -> [(layer: VideoLayer, index: Int, keyframe: Bool)?] {
        var sent: [[UInt8]: (VideoLayer, Int, Bool)] = [:]
        for unit in harness.layeredAccessUnits { sent[unit.accessUnit] = (unit.layer, unit.index, unit.keyframe) }
        return harness.receivedAccessUnits.map { sent[$0].map { (layer: $0.0, index: $0.1, keyframe: $0.2) } }
    }

    /// Down to the reduced layer and back up, at `lossRate` from the moment video flows.
    /// Without loss the network does not reorder either (jitter 0): a NACK is then only a gap.
    /// Returns the harness, the tap, and the holes the viewer skipped at its start (its startup).
    static func switchDownAndUp(seed: UInt64, lossRate: Double) throws -> (TwoPeerHarness, Tap, Int) {
        let harness = try TwoPeerHarness(seed: seed)
        harness.sendsReducedLayer = true
        if lossRate == 0 { harness.network.jitter = .zero }
        let tap = tapVideo(harness, payloadType: harness.negotiated.video!.payloadType)
        harness.start()
        #expect(harness.run(upTo: .seconds(5)) { !harness.receivedAccessUnits.isEmpty })
        let startupHoles = harness.viewer.statistics.holesSkipped
        harness.network.lossRate = lossRate
        harness.run(for: .seconds(1))
        harness.camera.wantedVideoLayer = .reduced
        harness.reducedKeyframeRequested = true
        #expect(harness.run(upTo: .seconds(2)) { harness.camera.videoLayer == .reduced })
        harness.run(for: .seconds(2))
        harness.camera.wantedVideoLayer = .full
        #expect(harness.run(upTo: .seconds(3)) { harness.camera.videoLayer == .full })
        harness.run(for: .seconds(1))
        harness.stopMedia()
        harness.network.lossRate = 0
        harness.run(for: .seconds(2))
        return (harness, tap, startupHoles)
    }

    /// Every access unit of the layer the viewer was on, in order, none twice, none of the other
    /// layer between, each switch at a keyframe; both switches made.
    static func expectOneWholeStream(_ harness: TwoPeerHarness) {
        let units = received(harness)
        #expect(units.allSatisfy { $0 != nil }, "an access unit the camera never sent")
        // From the first keyframe on (what came before it is the viewer's own startup).
        let known = units.compactMap { $0 }.drop { !$0.keyframe }
        var layers: [VideoLayer] = []
        for (previous, next) in zip(known, known.dropFirst()) {
            if next.layer == previous.layer {
                #expect(next.index == previous.index + 1, "\(previous) then \(next): a frame missing or repeated")
            } else {
                #expect(next.keyframe, "switched to \(next.layer) at a frame that is no keyframe")
                layers.append(next.layer)
            }
        }
        #expect(layers == [.reduced, .full])
        #expect(harness.camera.videoLayerSwitches == 2)
        #expect(known.filter { $0.layer == .reduced }.count >= 40, "about 2 s of the reduced layer")
    }

    @Test func switchesDownAndUpWithOneContinuousStream() throws {
        let (harness, tap, _) = try Self.switchDownAndUp(seed: 24, lossRate: 0)
        Self.expectOneWholeStream(harness)
        // On the wire: one SSRC, each number one after the other, timestamps never going back.
        #expect(Set(tap.packets.map(\.ssrc)) == [harness.fanout.videoSSRC])
        #expect(tap.packets.count > 300)
        var gaps = 0
        for (previous, next) in zip(tap.packets, tap.packets.dropFirst()) {
            if next.sequenceNumber != previous.sequenceNumber &+ 1 { gaps += 1 }
            #expect(Int32(bitPattern: next.timestamp &- previous.timestamp) >= 0)
        }
        #expect(gaps == 0)
        #expect(harness.viewer.statistics.sequenceNumbersNACKed == 0, "the viewer saw a gap")
        #expect(harness.viewer.statistics.holesSkipped == 0)
    }

    @Test func resendsTheRightLayersPacketsAcrossSwitchesAt5PercentLoss() throws {
        let (harness, _, startupHoles) = try Self.switchDownAndUp(seed: 7, lossRate: 0.05)
        #expect(harness.network.dropped > 20)
        #expect(harness.camera.statistics.retransmittedPackets > 10)
        #expect(harness.camera.statistics.retransmissionsMissingFromHistory == 0)
        #expect(harness.viewer.statistics.holesSkipped == startupHoles, "\(harness.viewer.statistics)")
        Self.expectOneWholeStream(harness)
    }

    @Test func aNACKAfterTheSwitchForAPacketBeforeItResendsTheOldLayersPacket() throws {
        let harness = try TwoPeerHarness(seed: 5)
        harness.sendsReducedLayer = true
        harness.network.jitter = .zero   // no reordering: the viewer NACKs nothing on its own
        let tap = Self.tapVideo(harness, payloadType: harness.negotiated.video!.payloadType)
        harness.start()
        #expect(harness.run(upTo: .seconds(5)) { !harness.receivedAccessUnits.isEmpty })
        harness.run(for: .milliseconds(500))
        harness.camera.wantedVideoLayer = .reduced
        harness.reducedKeyframeRequested = true
        #expect(harness.run(upTo: .seconds(2)) { harness.camera.videoLayer == .reduced })
        harness.run(for: .milliseconds(300))
        // The viewer's number of a reduced-layer packet (renumbered: its layer number differs)...
        let onReduced = tap.packets.last!.sequenceNumber
        #expect(harness.camera.videoLayers.original(of: onReduced)?.layer == .reduced)
        #expect(harness.camera.videoLayers.original(of: onReduced)?.sequenceNumber != onReduced)
        // ...asked for again once the viewer is back on the full layer.
        harness.camera.wantedVideoLayer = .full
        #expect(harness.run(upTo: .seconds(3)) { harness.camera.videoLayer == .full })
        harness.run(for: .milliseconds(100))
        let resent = harness.camera.statistics.retransmittedPackets
        let received = harness.viewer.statistics.retransmissionsReceived
        harness.viewer.sendNACK([onReduced])
        harness.flush()
        harness.run(for: .milliseconds(200))
        #expect(harness.camera.statistics.retransmittedPackets == resent + 1)
        #expect(harness.camera.statistics.retransmissionsMissingFromHistory == 0)
        #expect(harness.viewer.statistics.retransmissionsReceived == received + 1)
    }
}

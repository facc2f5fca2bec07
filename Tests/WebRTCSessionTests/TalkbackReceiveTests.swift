import RTCBase
import RTP
import Testing
import WebRTCSession
import WebRTCViewer

/// Talkback (issue 17): a viewer whose audio was answered sendrecv sends SRTP Opus; rtcam's session
/// verifies, decrypts and parses it and surfaces each packet as an event. Anyone else's RTP, and
/// packets that fail SRTP, are counted and dropped.
@Suite struct TalkbackReceiveTests {
    static func talkPacket(_ index: Int, payloadType: UInt8) -> [UInt8] {
        RTPPacket(payloadType: payloadType, sequenceNumber: UInt16(truncatingIfNeeded: 65_530 + index),
                  timestamp: UInt32(truncatingIfNeeded: 4_000_000_000 + index * 960), ssrc: 0x7A1C,
                  payload: [0xF8] + Array(repeating: UInt8(truncatingIfNeeded: index), count: 40)).serialized()
    }

    @Test func aTalkingViewersAudioComesOutAsEvents() throws {
        let harness = try TwoPeerHarness(seed: 11, talk: true)
        #expect(harness.negotiated.audio?.receive == true)
        harness.start()
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected && harness.viewerConnected })
        let payloadType = try #require(harness.negotiated.audio?.payloadType)
        for index in 0..<50 {
            #expect(harness.viewer.sendRTP(Self.talkPacket(index, payloadType: payloadType)))
            harness.run(for: .milliseconds(20))
        }
        // A packet of another payload type, and one whose authentication tag was damaged.
        harness.viewer.sendRTP(Self.talkPacket(50, payloadType: 96))
        harness.run(for: .milliseconds(100))
        let received = harness.cameraEvents.compactMap { event -> ReceivedAudioPacket? in
            if case let .audioReceived(packet) = event.1 { return packet }
            return nil
        }
        #expect(received.count == 50)
        #expect(received.map(\.sequenceNumber) == (0..<50).map { UInt16(truncatingIfNeeded: 65_530 + $0) })
        #expect(received.map(\.timestamp) == (0..<50).map { UInt32(truncatingIfNeeded: 4_000_000_000 + $0 * 960) })
        #expect(received.allSatisfy { $0.ssrc == 0x7A1C && $0.payload.count == 41 })
        #expect(received[7].payload.last == 7)
        #expect(harness.camera.statistics.audioPacketsReceived == 50)
        // Sending went on meanwhile: the viewer still gets rtcam's audio.
        #expect(harness.receivedAudioFrames > 50)
        // And rtcam's reports carry a block about the talker's stream (RFC 3550 §6.4.1).
        harness.run(for: .seconds(2))
        let blocks = harness.viewer.lastReportBlocks
        #expect(blocks.contains { $0.ssrc == 0x7A1C && $0.cumulativeLost == 0 && $0.highestSequence & 0xFFFF == UInt32(UInt16(truncatingIfNeeded: 65_530 + 49)) })
    }

    @Test func aRecvonlyViewersRTPIsDropped() throws {
        let harness = try TwoPeerHarness(seed: 12)
        #expect(harness.negotiated.audio?.receive == false)
        harness.start()
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected && harness.viewerConnected })
        let before = harness.camera.statistics.rejectedDatagrams
        let payloadType = try #require(harness.negotiated.audio?.payloadType)
        for index in 0..<10 { harness.viewer.sendRTP(Self.talkPacket(index, payloadType: payloadType)) }
        harness.run(for: .milliseconds(200))
        #expect(!harness.cameraEvents.contains { if case .audioReceived = $0.1 { return true }; return false })
        #expect(harness.camera.statistics.rejectedDatagrams == before + 10)
    }

    @Test func forgedOrDamagedSRTPIsCountedNotSurfaced() throws {
        let harness = try TwoPeerHarness(seed: 13, talk: true)
        harness.start()
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected && harness.viewerConnected })
        let payloadType = try #require(harness.negotiated.audio?.payloadType)
        // Plain RTP (never protected) from the viewer's address: it cannot pass SRTP's check.
        harness.network.send(Self.talkPacket(0, payloadType: payloadType) + Array(repeating: 0, count: 10),
                             from: harness.viewerAddress, to: TwoPeerHarness.cameraAddress, now: harness.now)
        harness.run(for: .milliseconds(100))
        #expect(harness.camera.statistics.srtpUnprotectFailures == 1)
        #expect(!harness.cameraEvents.contains { if case .audioReceived = $0.1 { return true }; return false })
    }
}

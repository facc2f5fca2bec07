import RTCBase
import RTP
import Testing

@testable import RTSP

@Suite("RTSP (RFC 2326): parser, session core, SDP, RTP framing")
struct RTSPConnectionTests {
    static func text(_ output: RTSPConnectionOutput) -> String? {
        if case let .send(bytes) = output { return String(decoding: bytes, as: UTF8.self) }
        return nil
    }

    static func settings(locked: [String]? = nil) -> RTSPServerSettings {
        var settings = RTSPServerSettings()
        settings.acceptedHA1s = locked
        settings.videoSSRC = 0x1234
        settings.audioSSRC = 0x5678
        settings.serverPorts = (6970, 6971)
        settings.spropParameterSets = "Z0LAH9oBQBbsBEAAAAMAQAAADyPGDKg=,aM4PyA=="
        return settings
    }

    @Test func parsesRequestsSplitAnywhereAndInterleavedFrames() throws {
        let wire = Array("OPTIONS rtsp://cam/ RTSP/1.0\r\nCSeq: 1\r\n\r\n".utf8) + [0x24, 1, 0, 3, 9, 8, 7]
            + Array("SET_PARAMETER rtsp://cam/ RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 4\r\n\r\nab\r\n".utf8)
        for cut in 0...wire.count {
            var parser = RTSPMessageParser()
            var inputs = try parser.append(Array(wire[..<cut]))
            inputs += try parser.append(Array(wire[cut...]))
            #expect(inputs.count == 3)
            guard inputs.count == 3 else { return }
            guard case let .request(first) = inputs[0], case let .interleaved(channel, payload) = inputs[1],
                  case let .request(third) = inputs[2] else { Issue.record("wrong kinds"); return }
            #expect(first.method == "OPTIONS" && first.header("cseq") == "1")
            #expect(channel == 1 && payload == [9, 8, 7])
            #expect(third.body == Array("ab\r\n".utf8))
        }
    }

    @Test func malformedInputThrows() {
        var parser = RTSPMessageParser()
        #expect(throws: RTSPParseError.self) { try parser.append(Array("GARBAGE\r\n\r\n".utf8)) }
        parser = RTSPMessageParser()
        #expect(throws: RTSPParseError.unsupportedVersion("HTTP/1.1")) { try parser.append(Array("GET / HTTP/1.1\r\n\r\n".utf8)) }
        parser = RTSPMessageParser()
        #expect(throws: RTSPParseError.headerTooLarge) { try parser.append([UInt8](repeating: 65, count: 9000)) }
        parser = RTSPMessageParser()
        #expect(throws: RTSPParseError.bodyTooLarge) {
            try parser.append(Array("DESCRIBE rtsp://c/ RTSP/1.0\r\nContent-Length: 999999\r\n\r\n".utf8))
        }
    }

    @Test func describeSetupPlayTeardownOverTCP() {
        let start = MonotonicTime(seconds: 100)
        var connection = RTSPConnection(sessionID: "S1", nonce: "N", now: start)
        let settings = Self.settings()
        var out = connection.received(Array("OPTIONS rtsp://cam:8554/ RTSP/1.0\r\nCSeq: 1\r\n\r\n".utf8), now: start, settings: settings)
        #expect(Self.text(out[0])?.hasPrefix("RTSP/1.0 200 OK\r\nCSeq: 1\r\n") == true)
        #expect(Self.text(out[0])?.contains("Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN") == true)

        out = connection.received(Array("DESCRIBE rtsp://cam:8554/ RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n".utf8), now: start, settings: settings)
        let describe = Self.text(out[0]) ?? ""
        #expect(describe.contains("Content-Base: rtsp://cam:8554/\r\n"))
        #expect(describe.contains("a=fmtp:96 packetization-mode=1;profile-level-id=42e01f;sprop-parameter-sets=Z0LAH9oBQBbsBEAAAAMAQAAADyPGDKg=,aM4PyA=="))
        #expect(describe.contains("a=rtpmap:97 opus/48000/2"))
        #expect(describe.contains("a=control:trackID=1"))

        out = connection.received(Array("SETUP rtsp://cam:8554/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n".utf8), now: start, settings: settings)
        let setup = Self.text(out[0]) ?? ""
        #expect(setup.contains("Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=1234\r\n"))
        #expect(setup.contains("Session: S1;timeout=60\r\n"))
        // The second SETUP must name the session.
        out = connection.received(Array("SETUP rtsp://cam:8554/trackID=1 RTSP/1.0\r\nCSeq: 4\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\n".utf8), now: start, settings: settings)
        #expect(Self.text(out[0])?.hasPrefix("RTSP/1.0 454") == true)
        out = connection.received(Array("SETUP rtsp://cam:8554/trackID=1 RTSP/1.0\r\nCSeq: 5\r\nSession: S1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\n".utf8), now: start, settings: settings)
        #expect(Self.text(out[0])?.hasPrefix("RTSP/1.0 200") == true)

        out = connection.received(Array("PLAY rtsp://cam:8554/ RTSP/1.0\r\nCSeq: 6\r\nSession: S1\r\n\r\n".utf8), now: start, settings: settings)
        #expect(out.count == 2)
        #expect(out.last == .play(sessionID: "S1", tracks: [.video: .tcp(rtpChannel: 0, rtcpChannel: 1), .audio: .tcp(rtpChannel: 2, rtcpChannel: 3)]))

        out = connection.received(Array("TEARDOWN rtsp://cam:8554/ RTSP/1.0\r\nCSeq: 7\r\nSession: S1\r\n\r\n".utf8), now: start, settings: settings)
        #expect(Self.text(out[0])?.hasPrefix("RTSP/1.0 200") == true)
        #expect(out.last == .stop(sessionID: "S1"))
    }

    @Test func udpTransportAndRefusals() {
        let now = MonotonicTime(seconds: 1)
        var connection = RTSPConnection(sessionID: "S2", nonce: "N", now: now)
        var settings = Self.settings()
        var out = connection.received(Array("SETUP rtsp://cam/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;multicast,RTP/AVP;unicast;client_port=5000-5001\r\n\r\n".utf8), now: now, settings: settings)
        #expect(Self.text(out[0])?.contains("Transport: RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=1234\r\n") == true)
        out = connection.received(Array("SETUP rtsp://cam/trackID=7 RTSP/1.0\r\nCSeq: 2\r\nSession: S2\r\nTransport: RTP/AVP;unicast;client_port=5002-5003\r\n\r\n".utf8), now: now, settings: settings)
        #expect(Self.text(out[0])?.hasPrefix("RTSP/1.0 404") == true)
        out = connection.received(Array("SETUP rtsp://cam/trackID=1 RTSP/1.0\r\nCSeq: 3\r\nSession: S2\r\nTransport: RTP/AVP;multicast\r\n\r\n".utf8), now: now, settings: settings)
        #expect(Self.text(out[0])?.hasPrefix("RTSP/1.0 461") == true)
        settings.refusal = "full"
        out = connection.received(Array("PLAY rtsp://cam/ RTSP/1.0\r\nCSeq: 4\r\nSession: S2\r\n\r\n".utf8), now: now, settings: settings)
        #expect(Self.text(out[0])?.hasPrefix("RTSP/1.0 503") == true)
        #expect(out.count == 1)
        out = connection.received(Array("RECORD rtsp://cam/ RTSP/1.0\r\nCSeq: 5\r\n\r\n".utf8), now: now, settings: settings)
        #expect(Self.text(out[0])?.hasPrefix("RTSP/1.0 501") == true)
        out = connection.received(Array("PLAY rtsp://cam/ RTSP/1.0\r\n\r\n".utf8), now: now, settings: settings)
        #expect(Self.text(out[0])?.hasPrefix("RTSP/1.0 400") == true)
    }

    @Test func digestChallengeThenAccepted() {
        let now = MonotonicTime(seconds: 1)
        let digest = DigestAuthenticator(realm: "rtcam")
        let ha1 = digest.ha1(username: "rtcam", secret: "rtcam_secret")
        var connection = RTSPConnection(sessionID: "S3", nonce: "NONCE", now: now)
        let settings = Self.settings(locked: [ha1])
        var out = connection.received(Array("DESCRIBE rtsp://cam/ RTSP/1.0\r\nCSeq: 1\r\n\r\n".utf8), now: now, settings: settings)
        #expect(Self.text(out[0])?.contains("RTSP/1.0 401") == true)
        #expect(Self.text(out[0])?.contains(#"WWW-Authenticate: Digest realm="rtcam", nonce="NONCE""#) == true)
        let response = MD5.hex("\(ha1):NONCE:\(MD5.hex("DESCRIBE:rtsp://cam/"))")
        out = connection.received(Array("DESCRIBE rtsp://cam/ RTSP/1.0\r\nCSeq: 2\r\nAuthorization: Digest username=\"rtcam\", realm=\"rtcam\", nonce=\"NONCE\", uri=\"rtsp://cam/\", response=\"\(response)\"\r\n\r\n".utf8), now: now, settings: settings)
        #expect(Self.text(out[0])?.hasPrefix("RTSP/1.0 200") == true)
        #expect(connection.admittedBy == ha1)
        // OPTIONS needs nothing.
        out = connection.received(Array("OPTIONS * RTSP/1.0\r\nCSeq: 3\r\n\r\n".utf8), now: now, settings: settings)
        #expect(Self.text(out[0])?.hasPrefix("RTSP/1.0 200") == true)
    }

    @Test func sessionExpiresWithoutActivityOnTheVirtualClock() {
        let start = MonotonicTime(seconds: 10)
        var connection = RTSPConnection(sessionID: "S4", nonce: "N", now: start)
        let settings = Self.settings()
        _ = connection.received(Array("SETUP rtsp://c/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n\r\n".utf8), now: start, settings: settings)
        _ = connection.received(Array("PLAY rtsp://c/ RTSP/1.0\r\nCSeq: 2\r\nSession: S4\r\n\r\n".utf8), now: start, settings: settings)
        #expect(connection.timeout(now: start + .seconds(59), settings: settings).isEmpty)
        connection.activity(now: start + .seconds(50))   // an RTCP receiver report
        #expect(connection.timeout(now: start + .seconds(100), settings: settings).isEmpty)
        #expect(connection.timeout(now: start + .seconds(110), settings: settings) == [.stop(sessionID: "S4"), .close])
        #expect(connection.received(Array("OPTIONS * RTSP/1.0\r\nCSeq: 3\r\n\r\n".utf8), now: start + .seconds(111), settings: settings).isEmpty)
    }

    @Test func rtpPacketsAndInterleavedFraming() throws {
        var random = SeededRandom(seed: 7)
        var packetizer = RTSPMediaPacketizer(random: &random)
        let big = [UInt8](repeating: 0x11, count: 3000)
        let accessUnit: [UInt8] = [0, 0, 0, 1, 0x67, 1, 2, 3, 0, 0, 0, 1, 0x68, 4, 0, 0, 0, 1, 0x65] + big
        let packets = packetizer.packetizeVideo(accessUnit: accessUnit, captureTime: MonotonicTime(seconds: 2))
        #expect(packets.count >= 3)
        #expect(packets.allSatisfy { $0.count <= 12 + RTSPMediaPacketizer.maxPayloadSize })
        #expect(packets.allSatisfy { $0[0] == 0x80 && $0[1] & 0x7F == 96 })
        #expect(packets.last![1] & 0x80 != 0 && packets.dropLast().allSatisfy { $0[1] & 0x80 == 0 })
        let sequences = packets.map { UInt16($0[2]) << 8 | UInt16($0[3]) }
        #expect(zip(sequences, sequences.dropFirst()).allSatisfy { $1 == $0 &+ 1 })
        let audio = packetizer.packetizeAudio(opusFrame: [1, 2, 3], captureTime: MonotonicTime(seconds: 2))
        #expect(audio.count == 15 && audio[1] == 97)
        let framed = RTSPMediaPacketizer.interleaved(channel: 2, packet: audio)
        #expect(Array(framed.prefix(4)) == [0x24, 2, 0, 15])

        // Sender Reports: the sender info counts what was sent, the RTP timestamp is the stream's
        // clock at the report's instant, the CNAME is shared by both streams.
        let video = try #require(try? RTCPPacket.parseCompound(
            packetizer.senderReport(for: .video, now: MonotonicTime(seconds: 3), ntp: 0xAABB_CCDD_0000_0000)))
        let audioReport = try #require(try? RTCPPacket.parseCompound(
            packetizer.senderReport(for: .audio, now: MonotonicTime(seconds: 3), ntp: 1)))
        guard case let .senderReport(sr)? = video.first, case let .sourceDescription(chunks)? = video.last,
              case let .senderReport(audioSR)? = audioReport.first, case let .sourceDescription(audioChunks)? = audioReport.last else {
            Issue.record("not SR + SDES: \(video)")
            return
        }
        #expect(sr.ssrc == packetizer.videoSSRC && sr.packetCount == UInt32(packets.count))
        #expect(sr.octetCount == UInt32(packets.reduce(0) { $0 + $1.count - 12 }))
        #expect(sr.ntpTimestamp == 0xAABB_CCDD_0000_0000)
        let firstTimestamp = UInt32(packets[0][4]) << 24 | UInt32(packets[0][5]) << 16 | UInt32(packets[0][6]) << 8 | UInt32(packets[0][7])
        #expect(sr.rtpTimestamp &- firstTimestamp == 90_000)   // one second after the frame, on the 90 kHz clock
        #expect(audioSR.ssrc == packetizer.audioSSRC && audioSR.packetCount == 1 && audioSR.octetCount == 3)
        #expect(chunks.first?.cname == packetizer.cname && audioChunks.first?.cname == packetizer.cname)
    }

    /// Bad input from the network never crashes: random bytes, and valid requests with random cuts
    /// and corruptions, through the connection core (which answers 400 and closes, or waits for more).
    @Test func randomInputNeverCrashes() {
        var random = SeededRandom(seed: 21)
        let valid = Array("SETUP rtsp://c/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=1-2\r\n\r\nPLAY rtsp://c/ RTSP/1.0\r\nCSeq: 2\r\nSession: S\r\n\r\n".utf8)
        var settings = Self.settings(locked: ["0123"])
        for round in 0..<3000 {
            settings.acceptedHA1s = round % 2 == 0 ? nil : ["0123"]
            var connection = RTSPConnection(sessionID: "S", nonce: "N", now: .zero)
            var bytes: [UInt8]
            if round % 3 == 0 {
                bytes = random.bytes(Int(random.next() % 300))
            } else {
                bytes = valid
                for _ in 0..<Int(random.next() % 6) {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
                bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count + 1))))
            }
            var offset = 0
            while offset < bytes.count {
                let step = 1 + Int(random.next() % 40)
                _ = connection.received(Array(bytes[offset..<min(bytes.count, offset + step)]), now: .zero, settings: settings)
                offset += step
            }
            _ = connection.timeout(now: MonotonicTime(seconds: 100), settings: settings)
        }
        // Random Digest headers parse or are refused, and never authenticate.
        let authenticator = DigestAuthenticator(realm: "rtcam")
        for _ in 0..<2000 {
            let text = String(decoding: Array("Digest ".utf8) + random.bytes(Int(random.next() % 80)).map { 32 + $0 % 95 }, as: UTF8.self)
            #expect(authenticator.verify(header: text, method: "PLAY", nonce: "N", username: "rtcam", ha1s: ["0123"]) == nil)
        }
    }
}

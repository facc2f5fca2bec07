public import RTCBase

/// The two streams an rtcam RTSP presentation has (SETUP's `trackID=`).
public enum RTSPTrack: Int, Sendable, Hashable, CaseIterable {
    case video = 0
    case audio = 1
}

/// How a client asked to get a track's RTP (RFC 2326 §12.39).
public enum RTSPTransport: Equatable, Sendable, Hashable {
    /// Interleaved in the RTSP TCP connection, `$` frames on these channels (§10.12).
    case tcp(rtpChannel: UInt8, rtcpChannel: UInt8)
    /// Unicast UDP to the client's ports (its address is the connection's peer).
    case udp(clientRTPPort: UInt16, clientRTCPPort: UInt16)
}

/// What the server is and may say, passed with every input (it changes: the SPS once known, whether
/// viewing is locked, the credentials).
public struct RTSPServerSettings: Sendable {
    public var realm = "rtcam"
    /// The user name Digest expects (RFC 2617 HA1 includes it): rtcam documents `rtcam`.
    public var username = "rtcam"
    /// nil: no credential needed (viewing is open). Else Digest HA1s of the accepted secrets.
    public var acceptedHA1s: [String]?
    public var profileLevelID = "42e01f"
    /// Base64 SPS,PPS for `sprop-parameter-sets` once seen; clients also find them in-band before each IDR.
    public var spropParameterSets: String?
    public var hasAudio = true
    public var videoSSRC: UInt32 = 0
    public var audioSSRC: UInt32 = 0
    /// The server's UDP ports for RTP and RTCP (nil: UDP transport unavailable).
    public var serverPorts: (rtp: UInt16, rtcp: UInt16)?
    /// A session without a request (or RTCP) for this long is ended (RFC 2326 §12.37: 60 s default).
    public var sessionTimeout: Duration = .seconds(60)
    /// Whether another client may start playing (viewer limit); nil: yes, else the reason.
    public var refusal: String?

    public init() {}
}

/// What the socket glue must do after an input.
public enum RTSPConnectionOutput: Equatable, Sendable {
    /// Write these bytes (a response) on the connection.
    case send([UInt8])
    /// Start sending the tracks to this client.
    case play(sessionID: String, tracks: [RTSPTrack: RTSPTransport])
    /// Stop sending (TEARDOWN, timeout, connection end).
    case stop(sessionID: String)
    /// Close the TCP connection (after a malformed request or a session timeout).
    case close
}

/// One client's RTSP control connection and its (single) session, sans-IO: bytes and time in,
/// responses and decisions out (RFC 2326 §10: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN,
/// GET_PARAMETER as keep-alive). The session id and the Digest nonce come from the caller (random).
public struct RTSPConnection: Sendable {
    public let sessionID: String
    public let nonce: String
    private var parser = RTSPMessageParser()
    private var tracks: [RTSPTrack: RTSPTransport] = [:]
    public private(set) var isPlaying = false
    /// The Digest HA1 that admitted the last request (nil: viewing was open): the server ends the
    /// session when that credential stops being accepted.
    public private(set) var admittedBy: String?
    private var lastActivity: MonotonicTime
    private var closed = false

    public init(sessionID: String, nonce: String, now: MonotonicTime) {
        self.sessionID = sessionID
        self.nonce = nonce
        lastActivity = now
    }

    /// When `timeout(now:)` must be called next (the session's expiry), nil once closed.
    public func deadline(_ settings: RTSPServerSettings) -> MonotonicTime? {
        closed ? nil : lastActivity + settings.sessionTimeout
    }

    /// RTCP from the client over UDP (a receiver report): the session is alive.
    public mutating func activity(now: MonotonicTime) { lastActivity = now }

    public mutating func timeout(now: MonotonicTime, settings: RTSPServerSettings) -> [RTSPConnectionOutput] {
        guard !closed, now - lastActivity >= settings.sessionTimeout else { return [] }
        return end()
    }

    /// The peer closed the connection.
    public mutating func connectionClosed() -> [RTSPConnectionOutput] {
        guard !closed else { return [] }
        closed = true
        return isPlaying || !tracks.isEmpty ? [.stop(sessionID: sessionID)] : []
    }

    private mutating func end() -> [RTSPConnectionOutput] {
        closed = true
        let wasPlaying = isPlaying
        isPlaying = false
        return (wasPlaying ? [.stop(sessionID: sessionID)] : []) + [.close]
    }

    public mutating func received(_ bytes: [UInt8], now: MonotonicTime, settings: RTSPServerSettings) -> [RTSPConnectionOutput] {
        guard !closed else { return [] }
        let inputs: [RTSPInput]
        do {
            inputs = try parser.append(bytes)
        } catch {
            let response = RTSPResponse(status: 400, headers: [("Server", "rtcam")],
                                        body: Array("malformed RTSP request: \(error)\r\n".utf8))
            return [.send(response.serialized())] + end()
        }
        var outputs: [RTSPConnectionOutput] = []
        for input in inputs {
            lastActivity = now
            guard case let .request(request) = input else { continue }  // the client's RTCP: activity only
            outputs += handle(request, settings: settings)
            if closed { break }
        }
        return outputs
    }

    private mutating func handle(_ request: RTSPRequest, settings: RTSPServerSettings) -> [RTSPConnectionOutput] {
        guard let cseq = request.header("CSeq"), !cseq.isEmpty, cseq.count <= 12 else {
            return [.send(RTSPResponse(status: 400, headers: [("Server", "rtcam")], body: Array("CSeq missing\r\n".utf8)).serialized())]
        }
        var headers: [(name: String, value: String)] = [("CSeq", cseq), ("Server", "rtcam")]
        func reply(_ status: Int, _ extra: [(name: String, value: String)] = [], body: [UInt8] = []) -> RTSPConnectionOutput {
            .send(RTSPResponse(status: status, headers: headers + extra, body: body).serialized())
        }
        let method = request.method.uppercased()
        if method == "OPTIONS" {
            return [reply(200, [("Public", "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER")])]
        }
        let known = ["DESCRIBE", "SETUP", "PLAY", "TEARDOWN", "GET_PARAMETER", "SET_PARAMETER", "PAUSE"]
        guard known.contains(method) else {
            return [reply(501, [("Public", "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER")])]
        }
        if let accepted = settings.acceptedHA1s {
            let authenticator = DigestAuthenticator(realm: settings.realm)
            guard let matched = authenticator.verify(header: request.header("Authorization"), method: request.method, nonce: nonce,
                                                     username: settings.username, ha1s: accepted) else {
                return [reply(401, [("WWW-Authenticate", authenticator.challenge(nonce: nonce))])]
            }
            admittedBy = matched
        }
        // Requests on the session must name it (RFC 2326 §12.37), except DESCRIBE and the first SETUP.
        if method != "DESCRIBE", !(method == "SETUP" && tracks.isEmpty) {
            guard let session = request.header("Session")?.split(separator: ";").first, session == sessionID[...] else {
                return [reply(454)]
            }
        }
        headers.append(("Session", "\(sessionID);timeout=\(settings.sessionTimeout.components.seconds)"))
        switch method {
        case "DESCRIBE":
            headers.removeLast()
            if let accept = request.header("Accept"), !accept.containsText("application/sdp"), !accept.containsText("*/*") {
                return [reply(406)]
            }
            let base = request.uri.hasSuffix("/") ? request.uri : request.uri + "/"
            let sdp = RTSPDescription.sdp(settings: settings, sessionID: sessionID)
            return [reply(200, [("Content-Base", base), ("Content-Type", "application/sdp")], body: Array(sdp.utf8))]
        case "SETUP":
            guard !isPlaying else { return [reply(455)] }
            guard let track = Self.track(in: request.uri), track != .audio || settings.hasAudio else { return [reply(404)] }
            guard let offered = request.header("Transport") else { return [reply(461)] }
            guard let transport = Self.transport(offered, track: track, udpAvailable: settings.serverPorts != nil) else {
                return [reply(461)]
            }
            tracks[track] = transport
            let ssrc = String(track == .video ? settings.videoSSRC : settings.audioSSRC, radix: 16, uppercase: true)
            let answer: String
            switch transport {
            case let .tcp(rtp, rtcp):
                answer = "RTP/AVP/TCP;unicast;interleaved=\(rtp)-\(rtcp);ssrc=\(ssrc)"
            case let .udp(rtp, rtcp):
                let ports = settings.serverPorts!
                answer = "RTP/AVP;unicast;client_port=\(rtp)-\(rtcp);server_port=\(ports.rtp)-\(ports.rtcp);ssrc=\(ssrc)"
            }
            return [reply(200, [("Transport", answer)])]
        case "PLAY":
            guard !tracks.isEmpty else { return [reply(455)] }
            if isPlaying { return [reply(200, [("Range", "npt=0.000-")])] }
            if let refusal = settings.refusal { return [reply(503, body: Array("\(refusal)\r\n".utf8))] }
            isPlaying = true
            return [reply(200, [("Range", "npt=0.000-")]), .play(sessionID: sessionID, tracks: tracks)]
        case "PAUSE":
            // A live camera: pausing would need the client to seek; refused as RFC 2326 allows.
            return [reply(455)]
        case "TEARDOWN":
            let wasPlaying = isPlaying
            isPlaying = false
            tracks = [:]
            headers.removeLast()
            return [reply(200)] + (wasPlaying ? [.stop(sessionID: sessionID)] : [])
        default:  // GET_PARAMETER, SET_PARAMETER: keep-alive
            return [reply(200)]
        }
    }

    /// `trackID=N` at the end of a SETUP URI.
    static func track(in uri: String) -> RTSPTrack? {
        let bytes = Array(uri.utf8)
        let key = Array("trackID=".utf8)
        var index = bytes.count - key.count
        while index >= 0 {
            if bytes[index..<(index + key.count)].elementsEqual(key) {
                let digits = bytes[(index + key.count)...].prefix { (48...57).contains($0) }
                guard !digits.isEmpty, digits.count <= 3 else { return nil }
                return Int(String(decoding: digits, as: UTF8.self)).flatMap(RTSPTrack.init(rawValue:))
            }
            index -= 1
        }
        return nil
    }

    /// The first transport in a client's list rtcam can do (unicast RTP/AVP over TCP or UDP).
    static func transport(_ header: String, track: RTSPTrack, udpAvailable: Bool) -> RTSPTransport? {
        for option in header.split(separator: ",") {
            let parameters = option.split(separator: ";").map { $0.trimmingCharacters(in: " \t") }
            guard let profile = parameters.first?.uppercased() else { continue }
            if parameters.contains(where: { $0.lowercased() == "multicast" }) { continue }
            func range(_ name: String) -> (Int, Int)? {
                guard let parameter = parameters.first(where: { $0.lowercased().hasPrefix(name + "=") }) else { return nil }
                let numbers = parameter.dropFirst(name.count + 1).split(separator: "-").compactMap { Int($0) }
                guard let first = numbers.first else { return nil }
                return (first, numbers.count > 1 ? numbers[1] : first + 1)
            }
            if profile == "RTP/AVP/TCP" {
                let channels = range("interleaved") ?? (track.rawValue * 2, track.rawValue * 2 + 1)
                guard (0...255).contains(channels.0), (0...255).contains(channels.1) else { continue }
                return .tcp(rtpChannel: UInt8(channels.0), rtcpChannel: UInt8(channels.1))
            }
            if profile == "RTP/AVP" || profile == "RTP/AVP/UDP", udpAvailable, let ports = range("client_port"),
               (1...65535).contains(ports.0), (1...65535).contains(ports.1) {
                return .udp(clientRTPPort: UInt16(ports.0), clientRTCPPort: UInt16(ports.1))
            }
        }
        return nil
    }
}

/// The SDP a DESCRIBE answers (RFC 2326 §C, RFC 6184 §8.2.1 for H.264, RFC 7587 §7 for Opus).
public enum RTSPDescription {
    public static let videoPayloadType: UInt8 = 96
    public static let audioPayloadType: UInt8 = 97

    public static func sdp(settings: RTSPServerSettings, sessionID: String) -> String {
        var fmtp = "packetization-mode=1;profile-level-id=\(settings.profileLevelID)"
        if let sprop = settings.spropParameterSets { fmtp += ";sprop-parameter-sets=\(sprop)" }
        var lines = [
            "v=0",
            "o=- \(sessionID.utf8.reduce(UInt32(0)) { $0 &* 31 &+ UInt32($1) }) 1 IN IP4 0.0.0.0",
            "s=rtcam",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "a=control:*",
            "a=range:npt=0-",
            "m=video 0 RTP/AVP \(videoPayloadType)",
            "a=rtpmap:\(videoPayloadType) H264/90000",
            "a=fmtp:\(videoPayloadType) \(fmtp)",
            "a=control:trackID=0",
        ]
        if settings.hasAudio {
            lines += [
                "m=audio 0 RTP/AVP \(audioPayloadType)",
                "a=rtpmap:\(audioPayloadType) opus/48000/2",
                "a=fmtp:\(audioPayloadType) sprop-stereo=0",
                "a=control:trackID=1",
            ]
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }
}

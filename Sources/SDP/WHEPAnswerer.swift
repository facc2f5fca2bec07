// Offer → answer for a WHEP viewer (RFC 9725): the browser offers recvonly media, rtcam answers as an
// ICE-lite (RFC 8445 §2.5), DTLS-SRTP (RFC 5763/5764), BUNDLE (RFC 8843), rtcp-mux sender of one
// H.264 video and one Opus audio stream. Answer layout follows RFC 8829 §5.3.1 (JSEP initial answer).

import RTCBase

public enum WHEPAnswerer {
    /// RTCP feedback rtcam acts on (RFC 4585 §4.2 nack, nack pli; RFC 5104 §7.1 ccm fir; REMB;
    /// transport-wide CC). Each is echoed only when the offer lists it for the chosen payload type.
    public static let supportedVideoFeedback = ["nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"]

    /// Codecs that are not a media codec of their own (retransmission, redundancy, FEC, comfort noise, DTMF).
    static let auxiliaryCodecs: Set<String> = ["rtx", "red", "ulpfec", "flexfec-03", "flexfec", "cn", "telephone-event"]

    public static func answer(offer: SessionDescription, capabilities: LocalCapabilities, local: LocalTransport)
        throws(SDPError) -> (answer: SessionDescription, negotiated: NegotiatedSession)
    {
        let bundle = offer.bundleMids
        var plans: [SectionPlan] = []
        var offeredVideoCodecs: [String] = []
        var offeredAudioCodecs: [String] = []
        var videoWantedButNoCodec = false
        var videoTaken = false, audioTaken = false, dataChannelTaken = false

        for section in offer.media {
            let kind = section.kind.asciiLowercased
            if kind == "video" { appendCodecNames(of: section, to: &offeredVideoCodecs) }
            if kind == "audio" { appendCodecNames(of: section, to: &offeredAudioCodecs) }

            // RFC 8843 §7.5.1 / RFC 3264 §6: port 0 without bundle-only is a section the offerer disabled.
            guard section.port != 0 || section.isBundleOnly else { plans.append(.rejected); continue }
            // One transport for everything: sections outside the BUNDLE group cannot be served.
            if let bundle { guard let mid = section.mid, bundle.contains(mid) else { plans.append(.rejected); continue } }
            // RFC 8841: one data channel section, carried over the same DTLS (see DataChannelNegotiation.swift).
            if kind == "application" {
                if capabilities.dataChannels, !dataChannelTaken, let choice = chooseDataChannel(in: section) {
                    plans.append(.dataChannel(choice))
                    dataChannelTaken = true
                } else {
                    plans.append(.rejected)
                }
                continue
            }
            // DTLS-SRTP profiles only (RFC 5764 §8: UDP/TLS/RTP/SAVP[F]; TCP/DTLS/RTP/SAVPF never reaches us).
            guard section.isRTP, section.proto.asciiLowercased.containsText("rtp/savp") else { plans.append(.rejected); continue }

            let direction = offer.direction(of: section)
            // RFC 8866 §6.7 / RFC 3264 §6.1: answering a recvonly or sendrecv offer we send;
            // a sendonly or inactive offer leaves nothing for us to send.
            let answerDirection: MediaDirection = (direction == .recvonly || direction == .sendrecv) ? .sendonly : .inactive

            switch kind {
            case "video" where capabilities.video && !videoTaken:
                if let choice = chooseH264(in: section, capabilities: capabilities) {
                    plans.append(.video(choice, answerDirection))
                    videoTaken = true
                } else {
                    if answerDirection == .sendonly { videoWantedButNoCodec = true }
                    plans.append(.rejected)
                }
            case "audio" where capabilities.audio && !audioTaken:
                if let choice = chooseOpus(in: section) {
                    // Talkback (issue 17): a sendrecv offer to a camera with a speaker is answered
                    // sendrecv; everything else as before (RFC 3264 §6.1).
                    let talk = capabilities.speaker && direction == .sendrecv
                    plans.append(.audio(choice, talk ? .sendrecv : answerDirection))
                    audioTaken = true
                } else {
                    plans.append(.rejected)
                }
            default:
                plans.append(.rejected)
            }
        }

        if videoWantedButNoCodec { throw .noCommonCodec(offered: offeredVideoCodecs) }
        if bundle == nil {
            // Without BUNDLE every section has a transport (ICE, DTLS) of its own, and a session has
            // one. GStreamer webrtcbin's default bundle-policy ("none") offers that way: serve its
            // video (the picture is what a camera is for) and reject the rest (RFC 3264 §6), rather
            // than refuse the viewer. Players that want sound offer max-bundle, as browsers do.
            let served = plans.firstIndex { if case .video = $0 { return true } else { return false } }
                ?? plans.firstIndex { $0.isAccepted }
            for index in plans.indices where index != served { plans[index] = .rejected }
        }
        let acceptedIndices = plans.indices.filter { plans[$0].isAccepted }
        guard let firstAccepted = acceptedIndices.first else {
            throw .noCommonCodec(offered: deduplicated(offeredVideoCodecs + offeredAudioCodecs))
        }

        // Transport parameters: the offerer BUNDLE-tag section (first mid of the group, RFC 8843 §7.2.1)
        // applies to every bundled section; without BUNDLE, the one accepted section.
        let transport = offer.transportSection(for: offer.media[firstAccepted])
        guard let remoteICE = offer.iceCredentials(of: transport) ?? offer.iceCredentials(of: offer.media[firstAccepted])
        else { throw .missingICECredentials }
        let fingerprints = offer.fingerprints(of: transport)
        guard !fingerprints.isEmpty else { throw .missingFingerprint(mid: transport.mid) }
        // RFC 8122 §5 / RFC 8827 §6.5: sha-256 is the one every browser sends and the one we verify.
        guard let sha256 = fingerprints.first(where: { $0.algorithm == "sha-256" }) else {
            throw .unsupportedFingerprintAlgorithm(fingerprints[0].algorithm)
        }
        // RFC 8843 §7.1.3: rtcp-mux is a property of the bundle transport; RFC 8829 §5.3.1 requires it for us.
        // (An application section as the BUNDLE tag carries no RTP lines.)
        guard transport.isRTCPMux || !transport.isRTP else { throw .notRTCPMux }

        // RFC 8842 §5.2 / RFC 5763 §5: actpass → we answer passive (DTLS server); active → passive
        // (server); passive → active (client). Absent means the offerer is active (RFC 4145 §4).
        let answerSetup: SDPSetup
        let role: DTLSSetupRole
        switch offer.setup(of: transport) {
        case .actpass, .active, nil:
            answerSetup = .passive
            role = .server
        case .passive:
            answerSetup = .active
            role = .client
        case .holdconn:
            throw .unsupportedSetupRole("holdconn")
        }

        // Build the answer: same sections, same order, same mids (RFC 8829 §5.3.1, RFC 3264 §6).
        var answer = SessionDescription(
            origin: SDPOrigin(username: "rtcam", sessionID: String(local.sessionID), sessionVersion: "1",
                              networkType: "IN", addressType: "IP4", address: "127.0.0.1"),
            sessionName: "-")
        if local.isICELite { answer.sessionAttributes.append(SDPAttribute("ice-lite")) }  // RFC 8839 §5.3
        let acceptedMids = acceptedIndices.compactMap { offer.media[$0].mid }
        if bundle != nil { answer.sessionAttributes.append(SDPAttribute("group", (["BUNDLE"] + acceptedMids).joined(separator: " "))) }

        let common = CommonSectionLines(local: local, setup: answerSetup)
        var negotiatedVideo: NegotiatedVideo?
        var negotiatedAudio: NegotiatedAudio?
        var negotiatedDataChannel: NegotiatedDataChannel?
        for (index, section) in offer.media.enumerated() {
            switch plans[index] {
            case .rejected:
                answer.media.append(rejectedSection(section, common: common))
            case let .video(choice, direction):
                var video = common.section(answering: section, formats: choice.payloadTypes, direction: direction)
                appendVideoLines(choice, direction: direction, offerSection: section, local: local, to: &video)
                answer.media.append(video)
                if direction == .sendonly { negotiatedVideo = choice.negotiated(mid: section.mid) }
            case let .audio(choice, direction):
                var audio = common.section(answering: section, formats: [String(choice.payloadType)], direction: direction)
                appendAudioLines(choice, direction: direction, offerSection: section, local: local, to: &audio)
                answer.media.append(audio)
                if direction == .sendonly || direction == .sendrecv {
                    negotiatedAudio = choice.negotiated(mid: section.mid)
                    negotiatedAudio?.receive = direction == .sendrecv
                }
            case let .dataChannel(choice):
                var application = common.section(answering: section, formats: section.formats, direction: .sendrecv)
                appendDataChannelLines(choice, local: local, to: &application)
                answer.media.append(application)
                negotiatedDataChannel = choice
            }
        }

        let negotiated = NegotiatedSession(
            remoteICEUfrag: remoteICE.ufrag, remoteICEPassword: remoteICE.password,
            remoteFingerprintSHA256: sha256.bytes, localDTLSRole: role,
            video: negotiatedVideo, audio: negotiatedAudio,
            bundleMids: bundle == nil ? [] : acceptedMids,
            rtcpReducedSize: offer.media[firstAccepted].isRTCPReducedSize,
            dataChannel: negotiatedDataChannel)
        return (answer, negotiated)
    }

    // MARK: - Codec choice

    enum SectionPlan {
        case rejected
        case video(VideoChoice, MediaDirection)
        case audio(AudioChoice, MediaDirection)
        case dataChannel(NegotiatedDataChannel)

        var isAccepted: Bool {
            if case .rejected = self { return false }
            return true
        }
    }

    struct VideoChoice {
        var payloadType: UInt8
        var rtxPayloadType: UInt8?
        var answerProfileLevelID: H264ProfileLevelID
        var sendProfileLevelID: H264ProfileLevelID
        var feedback: [String]
        var extensions: [SDPExtensionMap]

        var payloadTypes: [String] { [String(payloadType)] + (rtxPayloadType.map { [String($0)] } ?? []) }

        func negotiated(mid: String?) -> NegotiatedVideo {
            NegotiatedVideo(
                mid: mid, payloadType: payloadType, rtxPayloadType: rtxPayloadType,
                profileLevelID: answerProfileLevelID.description, sendProfileLevelID: sendProfileLevelID.description,
                nack: feedback.contains("nack"), pli: feedback.contains("nack pli"), fir: feedback.contains("ccm fir"),
                remb: feedback.contains("goog-remb"), transportCC: feedback.contains("transport-cc"),
                extensionIDs: extensionIDs(extensions))
        }
    }

    struct AudioChoice {
        var payloadType: UInt8
        var useInbandFEC: Bool
        var stereo: Bool
        var transportCC: Bool
        var extensions: [SDPExtensionMap]

        func negotiated(mid: String?) -> NegotiatedAudio {
            NegotiatedAudio(mid: mid, payloadType: payloadType, useInbandFEC: useInbandFEC, stereo: stereo,
                            transportCC: transportCC, extensionIDs: extensionIDs(extensions))
        }
    }

    /// H.264 (RFC 6184 §8.2.2): the first local profile, in preference order, that the offer has with
    /// packetization-mode=1; same profile class (see H264Profile), level = ours when both allow level
    /// asymmetry, else min(offered, ours). The answer reuses the offer's payload type (RFC 3264 §6.1).
    static func chooseH264(in section: MediaDescription, capabilities: LocalCapabilities) -> VideoChoice? {
        let maps = section.rtpMaps
        let parameters = section.fmtp
        struct Offered { var payloadType: UInt8; var profileLevelID: H264ProfileLevelID; var asymmetry: Bool }
        var offered: [Offered] = []
        for pt in section.payloadTypes {
            guard let map = maps[pt], map.encodingName.asciiLowercased == "h264", map.clockRate == 90000 else { continue }
            let fmtp = parameters[pt] ?? [:]
            // RFC 6184 §8.1: packetization-mode absent means 0 (single NAL unit); we packetize with FU-A (mode 1).
            guard fmtp["packetization-mode"] == "1" else { continue }
            let profileLevelID: H264ProfileLevelID
            if let text = fmtp["profile-level-id"] {
                guard let parsed = H264ProfileLevelID(text) else { continue }
                profileLevelID = parsed
            } else {
                profileLevelID = .defaultWhenAbsent
            }
            offered.append(Offered(payloadType: pt, profileLevelID: profileLevelID,
                                   asymmetry: fmtp["level-asymmetry-allowed"] == "1"))
        }

        for capability in capabilities.h264ProfileLevelIDs.compactMap(H264ProfileLevelID.init) {
            guard let match = offered.first(where: { $0.profileLevelID.profile == capability.profile }) else { continue }
            let lower = match.profileLevelID.levelOrder <= capability.levelOrder ? match.profileLevelID : capability
            // RFC 6184 §8.1 level-asymmetry-allowed: our answer may state our own level; what we send stays
            // within the offerer's level either way.
            let answerLevel = match.asymmetry ? capability : lower
            let pt = match.payloadType
            let offeredFeedback = section.rtcpFeedback[pt] ?? []
            return VideoChoice(
                payloadType: pt,
                rtxPayloadType: rtxPayloadType(for: pt, in: section, maps: maps, parameters: parameters),
                answerProfileLevelID: match.profileLevelID.withLevel(of: answerLevel),
                sendProfileLevelID: match.profileLevelID.withLevel(of: lower),
                feedback: supportedVideoFeedback.filter(offeredFeedback.contains),
                extensions: sendableExtensions(of: section))
        }
        return nil
    }

    /// RFC 4588 §8.6: the rtx payload type whose apt= is the chosen one.
    static func rtxPayloadType(for pt: UInt8, in section: MediaDescription, maps: [UInt8: RTPMap],
                               parameters: [UInt8: [String: String]]) -> UInt8? {
        section.payloadTypes.first { candidate in
            guard let map = maps[candidate], map.encodingName.asciiLowercased == "rtx", map.clockRate == 90000,
                  let apt = parameters[candidate]?["apt"] else { return false }
            return apt == String(pt)
        }
    }

    /// Opus (RFC 7587 §7): opus/48000/2 in SDP. GStreamer's webrtcbin (1.22) offers `OPUS/48000`
    /// without the channel count; Opus has no other channel count in SDP (the stream's channels are
    /// signalled in-band and by `stereo=`), so a missing count is taken as 2 and the answer says 2.
    static func chooseOpus(in section: MediaDescription) -> AudioChoice? {
        let maps = section.rtpMaps
        guard let pt = section.payloadTypes.first(where: { pt in
            guard let map = maps[pt] else { return false }
            return map.encodingName.asciiLowercased == "opus" && map.clockRate == 48000 && (map.channels ?? 2) == 2
        }) else { return nil }
        let fmtp = section.fmtp[pt] ?? [:]
        return AudioChoice(payloadType: pt, useInbandFEC: fmtp["useinbandfec"] == "1", stereo: fmtp["stereo"] == "1",
                           transportCC: (section.rtcpFeedback[pt] ?? []).contains("transport-cc"),
                           extensions: sendableExtensions(of: section))
    }

    /// The header extensions rtcam writes, with the offer's ids (RFC 8285 §6: the answer keeps the
    /// offered id). A mapping the offerer only sends (sendonly/inactive from its side) is left out.
    static func sendableExtensions(of section: MediaDescription) -> [SDPExtensionMap] {
        var chosen: [SDPExtensionMap] = []
        for map in section.extensionMaps where RTPHeaderExtensionURI.supported.contains(map.uri) {
            guard !chosen.contains(where: { $0.uri == map.uri || $0.id == map.id }) else { continue }
            switch map.direction {
            case nil, .sendrecv: chosen.append(SDPExtensionMap(id: map.id, uri: map.uri))
            case .recvonly: chosen.append(SDPExtensionMap(id: map.id, direction: .sendonly, uri: map.uri))
            case .sendonly, .inactive: continue
            }
        }
        return chosen
    }

    static func extensionIDs(_ maps: [SDPExtensionMap]) -> [String: UInt8] {
        var ids: [String: UInt8] = [:]
        for map in maps { ids[map.uri] = map.id }
        return ids
    }

    static func appendCodecNames(of section: MediaDescription, to names: inout [String]) {
        guard section.isRTP else { return }
        let maps = section.rtpMaps
        for pt in section.payloadTypes {
            guard let name = MediaDescription.encodingName(payloadType: pt, rtpMaps: maps),
                  !auxiliaryCodecs.contains(name.asciiLowercased),
                  !names.contains(where: { $0.asciiLowercased == name.asciiLowercased })
            else { continue }
            names.append(name)
        }
    }

    static func deduplicated(_ names: [String]) -> [String] {
        var out: [String] = []
        for name in names where !out.contains(where: { $0.asciiLowercased == name.asciiLowercased }) { out.append(name) }
        return out
    }

    // MARK: - Answer sections

    /// RFC 8829 §5.3.1 / RFC 3264 §6: a rejected section keeps kind, proto and formats, port 0, and its
    /// mid. It also carries the transport lines of an accepted one (ICE credentials, fingerprint, setup,
    /// direction inactive), which RFC 8829 does not forbid and some parsers need: GStreamer's webrtcbin
    /// (1.22) refuses a whole answer in which any section, rejected or not, lacks `a=fingerprint`
    /// ("No fingerprint lines in sdp for media N"); Chromium and Firefox ignore them in a port-0 section.
    static func rejectedSection(_ offered: MediaDescription, common: CommonSectionLines) -> MediaDescription {
        var section = common.section(answering: offered, formats: offered.formats, direction: .inactive)
        section.port = 0
        section.connection = SDPConnection()
        // rtcp-mux and rtcp-rsize describe an RTP transport: not for a rejected section, nor for non-RTP ones.
        section.attributes.removeAll { $0.name == "rtcp-mux" || $0.name == "rtcp-rsize" }
        return section
    }

    /// The transport lines every accepted section carries (JSEP answers repeat them per section; RFC 8843
    /// peers take them from the BUNDLE-tag section and accept identical copies elsewhere).
    struct CommonSectionLines {
        var local: LocalTransport
        var setup: SDPSetup

        func section(answering offered: MediaDescription, formats: [String], direction: MediaDirection) -> MediaDescription {
            // RFC 8839 §4.2.1.1 (default destination): the first candidate's address in m= and c=.
            let defaultCandidate = local.candidates.first?.address
            let connection: SDPConnection
            switch defaultCandidate?.ip {
            case let .v4(a, b, c, d)?: connection = SDPConnection(addressType: "IP4", address: "\(a).\(b).\(c).\(d)")
            case let ip?: connection = SDPConnection(addressType: "IP6", address: "\(ip)")
            case nil: connection = SDPConnection()
            }
            var section = MediaDescription(kind: offered.kind, port: defaultCandidate?.port ?? 9, proto: offered.proto,
                                           formats: formats, connection: connection)
            var attributes: [SDPAttribute] = []
            if let mid = offered.mid { attributes.append(SDPAttribute("mid", mid)) }
            attributes.append(SDPAttribute("ice-ufrag", local.iceUfrag))        // RFC 8839 §5.4
            attributes.append(SDPAttribute("ice-pwd", local.icePassword))
            attributes.append(SDPAttribute("fingerprint", "sha-256 " + local.fingerprintSHA256))  // RFC 8122 §5
            attributes.append(SDPAttribute("setup", setup.rawValue))            // RFC 4145 §4
            attributes.append(SDPAttribute(direction.rawValue))                 // RFC 8866 §6.7
            attributes.append(SDPAttribute("rtcp-mux"))                         // RFC 5761 §5.1.1
            if offered.isRTCPReducedSize { attributes.append(SDPAttribute("rtcp-rsize")) }  // RFC 5506 §5
            section.attributes = attributes
            return section
        }
    }

    static func appendExtensionMaps(_ maps: [SDPExtensionMap], to section: inout MediaDescription) {
        for map in maps {
            let id = map.direction.map { "\(map.id)/\($0.rawValue)" } ?? String(map.id)
            section.attributes.append(SDPAttribute("extmap", "\(id) \(map.uri)"))  // RFC 8285 §5
        }
    }

    static func appendCandidates(_ local: LocalTransport, to section: inout MediaDescription) {
        for candidate in local.candidates { section.attributes.append(SDPAttribute("candidate", candidate.sdpValue)) }
        for candidate in local.serverReflexiveCandidates {
            section.attributes.append(SDPAttribute("candidate", candidate.sdpValue))
        }
        for candidate in local.relayedCandidates {
            section.attributes.append(SDPAttribute("candidate", candidate.sdpValue))
        }
        for candidate in local.passiveTCPCandidates {
            section.attributes.append(SDPAttribute("candidate", candidate.sdpValue))
        }
        // RFC 8840 §8.2: all candidates are given (rtcam trickles none: a server-reflexive address
        // found later waits for the next answer).
        section.attributes.append(SDPAttribute("end-of-candidates"))
    }

    static func appendVideoLines(_ choice: VideoChoice, direction: MediaDirection, offerSection: MediaDescription,
                                 local: LocalTransport, to section: inout MediaDescription) {
        appendExtensionMaps(choice.extensions, to: &section)
        let trackID = local.streamID + "-video"
        if direction == .sendonly { section.attributes.append(SDPAttribute("msid", "\(local.streamID) \(trackID)")) }  // RFC 8830 §2
        let pt = String(choice.payloadType)
        section.attributes.append(SDPAttribute("rtpmap", "\(pt) H264/90000"))
        for feedback in choice.feedback { section.attributes.append(SDPAttribute("rtcp-fb", "\(pt) \(feedback)")) }  // RFC 4585 §4.2
        // RFC 6184 §8.1
        section.attributes.append(SDPAttribute(
            "fmtp", "\(pt) level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=\(choice.answerProfileLevelID)"))
        if let rtx = choice.rtxPayloadType {
            section.attributes.append(SDPAttribute("rtpmap", "\(rtx) rtx/90000"))  // RFC 4588 §8.6
            section.attributes.append(SDPAttribute("fmtp", "\(rtx) apt=\(pt)"))
        }
        if direction == .sendonly {
            // RFC 5576 §4.2 / RFC 4588 §8.7: FID groups the media SSRC with its retransmission SSRC.
            if choice.rtxPayloadType != nil {
                section.attributes.append(SDPAttribute("ssrc-group", "FID \(local.videoSSRC) \(local.videoRTXSSRC)"))
            }
            var ssrcs = [local.videoSSRC]
            if choice.rtxPayloadType != nil { ssrcs.append(local.videoRTXSSRC) }
            for ssrc in ssrcs {
                section.attributes.append(SDPAttribute("ssrc", "\(ssrc) cname:\(local.cname)"))  // RFC 5576 §6.1
                section.attributes.append(SDPAttribute("ssrc", "\(ssrc) msid:\(local.streamID) \(trackID)"))
            }
        }
        appendCandidates(local, to: &section)
    }

    static func appendAudioLines(_ choice: AudioChoice, direction: MediaDirection, offerSection: MediaDescription,
                                 local: LocalTransport, to section: inout MediaDescription) {
        appendExtensionMaps(choice.extensions, to: &section)
        let trackID = local.streamID + "-audio"
        let sends = direction == .sendonly || direction == .sendrecv
        if sends { section.attributes.append(SDPAttribute("msid", "\(local.streamID) \(trackID)")) }
        let pt = String(choice.payloadType)
        section.attributes.append(SDPAttribute("rtpmap", "\(pt) opus/48000/2"))  // RFC 7587 §7
        if choice.transportCC { section.attributes.append(SDPAttribute("rtcp-fb", "\(pt) transport-cc")) }
        section.attributes.append(SDPAttribute("fmtp", "\(pt) minptime=10;useinbandfec=1"))  // RFC 7587 §6.1
        if sends {
            section.attributes.append(SDPAttribute("ssrc", "\(local.audioSSRC) cname:\(local.cname)"))
            section.attributes.append(SDPAttribute("ssrc", "\(local.audioSSRC) msid:\(local.streamID) \(trackID)"))
        }
        appendCandidates(local, to: &section)
    }
}

// A browser-like recvonly offer (what Chromium's createOffer gives for two recvonly transceivers),
// used by the in-process test viewer and the load generator.

public enum RecvOnlyOfferBuilder {
    /// Header extension ids used in both sections (RFC 8843 §9.1.3: one id per URI across a BUNDLE group).
    public static let extensionIDs: [String: UInt8] = [
        RTPHeaderExtensionURI.mid: 1, RTPHeaderExtensionURI.absSendTime: 2, RTPHeaderExtensionURI.transportWideCC: 3,
    ]
    public static let opusPayloadType: UInt8 = 111

    /// Payload types of the H.264 entries (and their RTX) in order: 96/97, 98/99, ... skipping 111 (Opus).
    public static func videoPayloadTypes(count: Int) -> [(h264: UInt8, rtx: UInt8)] {
        let free = (96...127).map(UInt8.init).filter { $0 != opusPayloadType }
        var pairs: [(h264: UInt8, rtx: UInt8)] = []
        var index = 0
        while pairs.count < count, index + 1 < free.count {
            pairs.append((free[index], free[index + 1]))
            index += 2
        }
        return pairs
    }

    /// BUNDLE 0 1: mid 0 video (H.264 packetization-mode 1 with each of `h264ProfileLevelIDs`, at most 15,
    /// each with RTX), mid 1 Opus audio; recvonly, rtcp-mux, rtcp-rsize, setup:actpass, sha-256
    /// fingerprint. No video section when `h264ProfileLevelIDs` is empty.
    public static func offer(iceUfrag: String, icePassword: String, fingerprintSHA256: String,
                             h264ProfileLevelIDs: [String] = ["42e01f"], audio: Bool = true,
                             candidates: [HostCandidate] = [], sessionID: UInt64? = nil) -> SessionDescription {
        var description = SessionDescription(
            origin: SDPOrigin(username: "-", sessionID: String(sessionID ?? stableSessionID(iceUfrag + icePassword)),
                              sessionVersion: "2", address: "127.0.0.1"))
        var mids: [String] = []

        func transportAttributes(mid: String) -> [SDPAttribute] {
            var attributes = [
                SDPAttribute("ice-ufrag", iceUfrag),
                SDPAttribute("ice-pwd", icePassword),
                SDPAttribute("fingerprint", "sha-256 " + fingerprintSHA256),
                SDPAttribute("setup", "actpass"),
                SDPAttribute("mid", mid),
            ]
            for uri in [RTPHeaderExtensionURI.mid, RTPHeaderExtensionURI.absSendTime, RTPHeaderExtensionURI.transportWideCC] {
                if let id = extensionIDs[uri] { attributes.append(SDPAttribute("extmap", "\(id) \(uri)")) }
            }
            attributes += [SDPAttribute("recvonly"), SDPAttribute("rtcp-mux"), SDPAttribute("rtcp-rsize")]
            return attributes
        }

        func candidateAttributes() -> [SDPAttribute] {
            guard !candidates.isEmpty else { return [] }
            return candidates.map { SDPAttribute("candidate", $0.sdpValue) } + [SDPAttribute("end-of-candidates")]
        }

        let pairs = videoPayloadTypes(count: h264ProfileLevelIDs.count)
        if !pairs.isEmpty {
            let mid = String(mids.count)
            mids.append(mid)
            var video = MediaDescription(kind: "video", port: 9, proto: "UDP/TLS/RTP/SAVPF",
                                         formats: pairs.flatMap { [String($0.h264), String($0.rtx)] },
                                         connection: SDPConnection())
            video.attributes = transportAttributes(mid: mid)
            for (pair, profileLevelID) in zip(pairs, h264ProfileLevelIDs) {
                let pt = pair.h264
                video.attributes.append(SDPAttribute("rtpmap", "\(pt) H264/90000"))
                for feedback in ["nack", "nack pli", "ccm fir", "transport-cc"] {
                    video.attributes.append(SDPAttribute("rtcp-fb", "\(pt) \(feedback)"))
                }
                video.attributes.append(SDPAttribute(
                    "fmtp", "\(pt) level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=\(profileLevelID)"))
                video.attributes.append(SDPAttribute("rtpmap", "\(pair.rtx) rtx/90000"))
                video.attributes.append(SDPAttribute("fmtp", "\(pair.rtx) apt=\(pt)"))
            }
            video.attributes += candidateAttributes()
            description.media.append(video)
        }
        if audio {
            let mid = String(mids.count)
            mids.append(mid)
            let pt = opusPayloadType
            var section = MediaDescription(kind: "audio", port: 9, proto: "UDP/TLS/RTP/SAVPF", formats: [String(pt)],
                                           connection: SDPConnection())
            section.attributes = transportAttributes(mid: mid) + [
                SDPAttribute("rtpmap", "\(pt) opus/48000/2"),
                SDPAttribute("rtcp-fb", "\(pt) transport-cc"),
                SDPAttribute("fmtp", "\(pt) minptime=10;useinbandfec=1"),
            ] + candidateAttributes()
            description.media.append(section)
        }
        if !mids.isEmpty {
            description.sessionAttributes.append(SDPAttribute("group", (["BUNDLE"] + mids).joined(separator: " ")))
        }
        return description
    }
}

import DTLS
import ICE
import RTCBase
import SDP
import WebRTCViewer

/// One viewer's WHEP exchange as a browser does it: a recvonly offer (rtcam's
/// `RecvOnlyOfferBuilder`), POST /whep, and what the answer says (ICE credentials, fingerprint,
/// setup, payload types, rtcam's host candidate, video SSRC) turned into a `ViewerConfiguration`.
struct WHEPNegotiation {
    var configuration: ViewerConfiguration
    /// The session's resource (Location header), for DELETE.
    var sessionPath: String
    var videoSSRC: UInt32?

    enum Failure: Error, CustomStringConvertible {
        case http(String)
        case status(Int, String)
        case answer(String)

        var description: String {
            switch self {
            case let .http(reason): "HTTP: \(reason)"
            case let .status(code, body): "POST /whep answered \(code): \(body.prefix(200))"
            case let .answer(reason): "answer: \(reason)"
            }
        }
    }

    static func negotiate(endpoint: HTTPEndpoint, certificate: DTLSCertificate,
                          random: inout some RandomNumberGenerator) throws(Failure) -> WHEPNegotiation {
        let localICE = ICECredentials.random(using: &random)
        let offer = RecvOnlyOfferBuilder.offer(iceUfrag: localICE.ufrag, icePassword: localICE.password,
                                               fingerprintSHA256: certificate.fingerprintSDP)
        let response: HTTPResponse
        do {
            response = try HTTPClient.request(method: "POST", host: endpoint.host, port: endpoint.port, path: "/whep",
                                              headers: [("Content-Type", "application/sdp")],
                                              body: Array(offer.serialized().utf8))
        } catch {
            throw .http(error.description)
        }
        guard response.status == 201 else { throw .status(response.status, response.bodyText) }
        guard let location = response.header("Location") else { throw .answer("201 without Location") }

        let answer: SessionDescription
        do {
            answer = try SessionDescription(parsing: response.bodyText)
        } catch {
            throw .answer("does not parse: \(error)")
        }
        guard let video = answer.media.first(where: { $0.kind == "video" && $0.port != 0 }) else {
            throw .answer("no accepted video section")
        }
        let audio = answer.media.first { $0.kind == "audio" && $0.port != 0 }
        guard let ufrag = video.iceUfrag ?? answer.iceUfrag, let password = video.icePassword ?? answer.icePassword else {
            throw .answer("no ICE credentials")
        }
        guard let fingerprint = (video.fingerprints + answer.fingerprints).first(where: { $0.algorithm.lowercased() == "sha-256" }) else {
            throw .answer("no sha-256 fingerprint")
        }
        let setup = video.setup ?? answer.setup ?? .passive
        // RFC 8839 §5.1: candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type>
        var remote: TransportAddress?
        for candidate in video.candidates + (audio?.candidates ?? []) {
            let fields = candidate.split(separator: " ")
            if fields.count >= 6, fields[2].lowercased() == "udp", let port = UInt16(fields[5]),
               let address = TransportAddress(host: String(fields[4]), port: port), address.ip.isIPv4 {
                remote = address
                break
            }
        }
        guard let remote else { throw .answer("no IPv4 UDP candidate") }

        let maps = video.rtpMaps
        guard let videoPT = video.payloadTypes.first(where: { maps[$0]?.encodingName.lowercased() == "h264" }) else {
            throw .answer("no H.264 payload type")
        }
        let fmtp = video.fmtp
        let rtxPT = video.payloadTypes.first {
            maps[$0]?.encodingName.lowercased() == "rtx" && fmtp[$0]?["apt"] == String(videoPT)
        }
        let audioPT = audio.flatMap { section in
            section.payloadTypes.first { section.rtpMaps[$0]?.encodingName.lowercased() == "opus" }
        }
        // The primary SSRC of the FID group (RFC 5576 §4.2 / RFC 4588 §8), else the first one.
        let fid = video.sourceGroups.first { $0.semantics.uppercased() == "FID" }?.ssrcs.first
        let configuration = ViewerConfiguration(
            localICE: localICE, remoteICE: ICECredentials(ufrag: ufrag, password: password), remoteAddress: remote,
            certificate: certificate, remoteFingerprintSHA256: fingerprint.bytes,
            dtlsRole: setup == .active ? .server : .client,
            videoPayloadType: videoPT, videoRTXPayloadType: rtxPT, audioPayloadType: audioPT)
        return WHEPNegotiation(configuration: configuration, sessionPath: location, videoSSRC: fid ?? video.ssrcs.first)
    }
}

extension TransportAddress.IP {
    var isIPv4: Bool {
        if case .v4 = self { return true }
        return false
    }
}

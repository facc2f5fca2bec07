import NIOCore
import NIOHTTP1

/// The camera's HTTP surface: WHEP (draft-ietf-wish-whep, with WHIP's rules from RFC 9725), the viewer
/// page, and the JSON API. Runs on the hub's event loop.
final class CameraRouter: HTTPRouting, @unchecked Sendable {  // confined to the hub's event loop
    private let hub: StreamHub
    private let status: () -> String

    /// CORS for third-party WHEP players on other origins (RFC 9725 §4.8 leans on it).
    static let corsHeaders: [(String, String)] = [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Expose-Headers", "Location, Link, ETag, Accept-Patch"),
    ]

    init(hub: StreamHub, status: @escaping () -> String) {
        self.hub = hub
        self.status = status
    }

    func respond(to request: HTTPRequest, remote: SocketAddress?) -> HTTPResponse {
        var response = route(request)
        if request.path == "/whep" || request.path.hasPrefix("/whep/") {
            response.headers += Self.corsHeaders
        }
        return response
    }

    private func route(_ request: HTTPRequest) -> HTTPResponse {
        let path = request.path
        switch (request.method, path) {
        case (.GET, "/"), (.HEAD, "/"), (.GET, "/index.html"):
            return .html(ViewerPage.html)
        case (.GET, "/healthz"):
            return .text(.ok, "ok")
        case (.GET, "/api/status"):
            return .json(.ok, status())
        case (.OPTIONS, "/whep"):
            return preflight(allowing: "POST, OPTIONS", extra: [("Accept-Post", "application/sdp")])
        case (.POST, "/whep"):
            return createSession(request)
        case (_, "/whep"):
            return .text(.methodNotAllowed, "use POST with an SDP offer", headers: [("Allow", "POST, OPTIONS")])
        default:
            break
        }
        if path.hasPrefix("/whep/") {
            let id = String(path.dropFirst("/whep/".count))
            switch request.method {
            case .OPTIONS:
                return preflight(allowing: "PATCH, DELETE, OPTIONS",
                                 extra: [("Accept-Patch", "application/trickle-ice-sdpfrag")])
            case .DELETE:
                return hub.deleteSession(id: id)
                    ? .text(.ok, "session \(id) ended")
                    : .text(.notFound, "no WHEP session \(id)")
            case .PATCH:
                return patchSession(id: id, request)
            default:
                return .text(.methodNotAllowed, "use PATCH or DELETE on a session",
                             headers: [("Allow", "PATCH, DELETE, OPTIONS")])
            }
        }
        return .text(.notFound, "nothing at \(path)")
    }

    private func preflight(allowing methods: String, extra: [(String, String)]) -> HTTPResponse {
        HTTPResponse(status: .noContent, headers: [
            ("Access-Control-Allow-Methods", methods),
            ("Access-Control-Allow-Headers", "Content-Type, Authorization, If-Match"),
            ("Access-Control-Max-Age", "86400"),
        ] + extra)
    }

    /// POST /whep (RFC 9725 §4.2): 201 with the answer and the session's Location.
    private func createSession(_ request: HTTPRequest) -> HTTPResponse {
        guard request.contentType == "application/sdp" else {
            return .text(.unsupportedMediaType,
                         "a WHEP offer must be sent as Content-Type: application/sdp (got \(request.contentType ?? "none"))")
        }
        guard let offer = String(validating: request.body, as: UTF8.self), !offer.isEmpty else {
            return .text(.badRequest, "the SDP offer is empty or not UTF-8")
        }
        do {
            let (id, answer) = try hub.createSession(offer: offer)
            return HTTPResponse(status: .created, headers: [
                ("Content-Type", "application/sdp"),
                ("Location", "/whep/\(id)"),
            ], body: Array(answer.utf8))
        } catch {
            switch error {
            case let .malformedOffer(reason):
                return .text(.badRequest, "malformed SDP offer: \(reason)")
            case let .noCommonCodec(reason):
                return .text(.notAcceptable, "no codec in common: \(reason); rtcam sends H.264 (packetization-mode=1) and Opus")
            case let .viewerLimitReached(limit):
                return .text(.serviceUnavailable, "the camera already has \(limit) viewers; try again later",
                             headers: [("Retry-After", "10")])
            case .unknownSession:
                return .text(.notFound, "unknown session")
            case let .internalFailure(reason):
                return .text(.internalServerError, reason)
            }
        }
    }

    /// PATCH /whep/{id} with a trickle-ice-sdpfrag (RFC 8840, RFC 9725 §4.3). rtcam is ICE-lite and
    /// learns the viewer's addresses from its checks, so trickled candidates need no action.
    private func patchSession(id: String, _ request: HTTPRequest) -> HTTPResponse {
        guard hub.sessionExists(id: id) else { return .text(.notFound, "no WHEP session \(id)") }
        guard request.contentType == "application/trickle-ice-sdpfrag" else {
            return .text(.unsupportedMediaType, "PATCH takes Content-Type: application/trickle-ice-sdpfrag")
        }
        return HTTPResponse(status: .noContent)
    }
}

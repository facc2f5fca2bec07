import NIOCore
import NIOHTTP1
import NIOPosix
import RTCBase
import SystemSupport

/// The camera's HTTP surface: WHEP (draft-ietf-wish-whep, with WHIP's rules from RFC 9725), the viewer
/// and settings pages, and the JSON API. Runs on the hub's event loop; password hashing runs on a
/// thread pool.
final class CameraRouter: HTTPRouting, @unchecked Sendable {  // confined to the hub's event loop
    private let hub: StreamHub
    private let access: AccessControl
    private let settings: SettingsController
    private let threadPool: NIOThreadPool
    private let status: () -> String
    private let devices: () -> String

    /// CORS for third-party WHEP players on other origins (RFC 9725 §4.8 leans on it).
    static let corsHeaders: [(String, String)] = [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Expose-Headers", "Location, Link, ETag, Accept-Patch"),
    ]

    init(hub: StreamHub, access: AccessControl, settings: SettingsController, threadPool: NIOThreadPool,
         status: @escaping () -> String, devices: @escaping () -> String) {
        self.hub = hub
        self.access = access
        self.settings = settings
        self.threadPool = threadPool
        self.status = status
        self.devices = devices
    }

    func respond(to request: HTTPRequest, remote: SocketAddress?) -> EventLoopFuture<HTTPResponse> {
        let loop = hub.loop
        if let slow = slowRoute(request, remote: remote) {
            return slow.map { response in Self.withCORS(response, for: request) }
        }
        if request.method == .PUT, request.path == "/api/config" {
            return isAuthenticated(request) ? updateConfig(request) : loop.makeSucceededFuture(Self.loginRequired)
        }
        return loop.makeSucceededFuture(Self.withCORS(route(request), for: request))
    }

    private static func withCORS(_ response: HTTPResponse, for request: HTTPRequest) -> HTTPResponse {
        guard request.path == "/whep" || request.path.hasPrefix("/whep/") else { return response }
        var response = response
        response.headers += corsHeaders
        return response
    }

    private func isAuthenticated(_ request: HTTPRequest) -> Bool {
        access.isAuthenticated(cookieHeader: request.headers.first(name: "cookie"), now: MonotonicClock.now())
    }

    private static let loginRequired = HTTPResponse.json(
        .unauthorized, #"{"error":"log in on the settings page first"}"#)

    private func route(_ request: HTTPRequest) -> HTTPResponse {
        let path = request.path
        switch (request.method, path) {
        case (.GET, "/"), (.HEAD, "/"), (.GET, "/index.html"):
            return .html(ViewerPage.html)
        case (.GET, "/settings"), (.HEAD, "/settings"):
            return .html(SettingsPage.html)
        case (.GET, "/healthz"):
            return .text(.ok, "ok")
        case (.GET, "/api/session"):
            return .json(.ok, sessionJSON(authenticated: isAuthenticated(request)))
        case (.POST, "/api/logout"):
            access.logout(cookieHeader: request.headers.first(name: "cookie"))
            return .json(.ok, #"{"loggedOut":true}"#, headers: [("Set-Cookie", AccessControl.expiredCookie)])
        case (.GET, "/api/status"):
            return isAuthenticated(request) ? .json(.ok, status()) : Self.loginRequired
        case (.GET, "/api/devices"):
            return isAuthenticated(request) ? .json(.ok, devices()) : Self.loginRequired
        case (.GET, "/api/config"):
            return isAuthenticated(request) ? .json(.ok, settings.configJSON()) : Self.loginRequired
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
        if path.hasPrefix("/api/") {
            return .json(.notFound, #"{"error":"no such API endpoint"}"#)
        }
        return .text(.notFound, "nothing at \(path)")
    }

    // MARK: - Password and login (PBKDF2 on the thread pool)

    private func slowRoute(_ request: HTTPRequest, remote: SocketAddress?) -> EventLoopFuture<HTTPResponse>? {
        guard request.method == .POST, request.path == "/api/login" || request.path == "/api/password" else { return nil }
        let loop = hub.loop
        guard request.contentType == "application/json" else {
            return loop.makeSucceededFuture(.json(.unsupportedMediaType, #"{"error":"send application/json"}"#))
        }
        let body: JSONValue
        do {
            body = try JSONValue(parsing: String(decoding: request.body, as: UTF8.self))
        } catch {
            return loop.makeSucceededFuture(.json(.badRequest, errorJSON("\(error)")))
        }
        let address = remote?.ipAddress ?? "unknown"
        let access = access
        let authenticated = isAuthenticated(request)
        let isLogin = request.path == "/api/login"
        return threadPool.runIfActive(eventLoop: loop) { () -> HTTPResponse in
            let now = MonotonicClock.now()
            do {
                let token: String
                if isLogin {
                    guard let password = body["password"]?.stringValue else {
                        return .json(.badRequest, #"{"error":"send {\"password\": \"...\"}"}"#)
                    }
                    token = try access.login(password: password, address: address, now: now)
                } else if !access.hasPassword {
                    guard let password = body["password"]?.stringValue else {
                        return .json(.badRequest, #"{"error":"send {\"password\": \"...\"}"}"#)
                    }
                    token = try access.setInitialPassword(password, now: now)
                } else {
                    guard authenticated else { return Self.loginRequired }
                    guard let current = body["currentPassword"]?.stringValue, let new = body["newPassword"]?.stringValue else {
                        return .json(.badRequest, #"{"error":"send {\"currentPassword\": \"...\", \"newPassword\": \"...\"}"}"#)
                    }
                    token = try access.changePassword(current: current, new: new, address: address, now: now)
                }
                return .json(.ok, #"{"authenticated":true}"#, headers: [("Set-Cookie", AccessControl.cookie(for: token))])
            } catch let failure as AccessControl.Failure {
                switch failure {
                case .passwordAlreadySet:
                    return .json(.conflict, errorJSON("a password is already set: log in, then change it"))
                case .noPasswordSet:
                    return .json(.conflict, errorJSON("no password yet: choose one first"))
                case let .weakPassword(reason):
                    return .json(.badRequest, errorJSON("password too weak: \(reason)"))
                case .wrongPassword:
                    return .json(.unauthorized, errorJSON("wrong password"))
                case let .tooManyAttempts(seconds):
                    return .json(.tooManyRequests, errorJSON("too many failed attempts; try again in \(seconds) s"),
                                 headers: [("Retry-After", String(seconds))])
                }
            } catch {
                return .json(.internalServerError, errorJSON("could not save the password: \(error)"))
            }
        }
    }

    private func sessionJSON(authenticated: Bool) -> String {
        var json = JSONWriter()
        json.beginObject()
        json.field("passwordSet", access.hasPassword)
        json.field("authenticated", authenticated)
        json.field("viewingRequiresPassword", settings.current.viewingRequiresPassword)
        json.field("passwordProblem", access.loadProblem)
        json.endObject()
        return json.text
    }

    // MARK: - Configuration

    /// PUT /api/config: validated, applied live (viewers stay connected; a new pipeline is built
    /// off the event loop), saved atomically.
    private func updateConfig(_ request: HTTPRequest) -> EventLoopFuture<HTTPResponse> {
        let loop = hub.loop
        guard request.contentType == "application/json" else {
            return loop.makeSucceededFuture(.json(.unsupportedMediaType, errorJSON("send the settings as application/json")))
        }
        let body: JSONValue
        do {
            body = try JSONValue(parsing: String(decoding: request.body, as: UTF8.self))
        } catch {
            return loop.makeSucceededFuture(.json(.badRequest, errorJSON("\(error)")))
        }
        return settings.update(with: body).map { [self] result in response(to: result) }
    }

    private func response(to result: SettingsController.UpdateResult) -> HTTPResponse {
        switch result {
        case let .success(json):
            return .json(.ok, json)
        case let .invalid(errors):
            var json = JSONWriter()
            json.beginObject()
            json.field("error", "invalid settings: nothing was changed")
            json.key("errors")
            json.beginArray()
            for (field, message) in errors {
                json.beginObject()
                json.field("field", field)
                json.field("message", message)
                json.endObject()
            }
            json.endArray()
            json.endObject()
            return .json(.badRequest, json.text)
        case let .saveFailed(reason):
            return .json(.internalServerError, errorJSON(reason))
        }
    }

    // MARK: - WHEP

    private func preflight(allowing methods: String, extra: [(String, String)]) -> HTTPResponse {
        HTTPResponse(status: .noContent, headers: [
            ("Access-Control-Allow-Methods", methods),
            ("Access-Control-Allow-Headers", "Content-Type, Authorization, If-Match"),
            ("Access-Control-Max-Age", "86400"),
        ] + extra)
    }

    /// POST /whep (RFC 9725 §4.2): 201 with the answer and the session's Location.
    private func createSession(_ request: HTTPRequest) -> HTTPResponse {
        if settings.current.viewingRequiresPassword, !isAuthenticated(request) {
            return .text(.unauthorized, "viewing this camera needs the password: log in at /settings")
        }
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
                ("ETag", hub.entityTag(of: id) ?? "*"),
                ("Accept-Patch", "application/trickle-ice-sdpfrag"),
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
            case .unknownSession, .preconditionFailed:
                return .text(.notFound, "unknown session")
            case let .internalFailure(reason):
                return .text(.internalServerError, reason)
            case .stopping:
                return .text(.serviceUnavailable, "the camera is stopping; try again shortly", headers: [("Retry-After", "5")])
            }
        }
    }

    /// PATCH /whep/{id} with a trickle-ice-sdpfrag (RFC 8840, RFC 9725 §4.3): trickled candidates
    /// (204: rtcam is ICE-lite and learns the viewer's addresses from its checks) or an ICE restart
    /// (200 with rtcam's new credentials and a new ETag).
    private func patchSession(id: String, _ request: HTTPRequest) -> HTTPResponse {
        guard hub.sessionExists(id: id) else { return .text(.notFound, "no WHEP session \(id)") }
        guard request.contentType == "application/trickle-ice-sdpfrag" else {
            return .text(.unsupportedMediaType, "PATCH takes Content-Type: application/trickle-ice-sdpfrag")
        }
        let fragment = String(decoding: request.body, as: UTF8.self)
        do {
            switch try hub.patchSession(id: id, fragment: fragment, ifMatch: request.headers.first(name: "if-match")) {
            case .trickled:
                return HTTPResponse(status: .noContent)
            case let .restarted(answer, entityTag):
                return HTTPResponse(status: .ok, headers: [("Content-Type", "application/trickle-ice-sdpfrag"),
                                                           ("ETag", entityTag)], body: Array(answer.utf8))
            }
        } catch {
            switch error {
            case .preconditionFailed:
                return .text(.preconditionFailed, "If-Match does not name this session's current ICE session (ETag)")
            case .unknownSession:
                return .text(.notFound, "no WHEP session \(id)")
            case let .malformedOffer(reason):
                return .text(.badRequest, "malformed sdpfrag: \(reason)")
            default:
                return .text(.internalServerError, "\(error)")
            }
        }
    }
}

func errorJSON(_ message: String) -> String {
    var json = JSONWriter()
    json.beginObject()
    json.field("error", message)
    json.endObject()
    return json.text
}

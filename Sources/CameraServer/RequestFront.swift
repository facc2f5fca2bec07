import NIOHTTP1
import RTCBase

/// The first half of answering a request: everything decided from the request alone, before any of
/// the camera's state changes (the login sessions' idle clocks aside). `RequestPolicy`'s Host, Origin
/// and HTTPS checks, the route table, who is asking (session cookie, `Authorization: Bearer`, or
/// nobody), and the body decoded (JSON, the SDP offer's text). `CameraRouter` then does the work a
/// `Decision` names. Sans-IO, so the http fuzz target (Tests/Fuzz/targets/http.swift) drives the
/// daemon's own decisions with hostile requests.
struct RequestFront {
    let policy: RequestPolicy
    let access: AccessControl
    let tokens: ViewingTokens

    /// What a request asks for, once it passed every check that needs no camera state.
    enum Decision {
        /// Already complete: a refusal (policy, credential, method, media type, body), a redirect to
        /// HTTPS, a preflight, the health check, or a 404. CORS headers are in for WHEP paths.
        case answer(HTTPResponse)
        /// /snapshot.jpg, /stream.mjpg, /metrics (OutputEndpoints asks `mayView` itself).
        case outputs
        case viewerPage
        case settingsPage
        case sessionState(authenticated: Bool)
        case logout
        case listTokens
        case createToken(name: String)
        case revokeToken(id: String)
        case status
        case devices
        case readConfig
        case updateConfig(JSONValue)
        /// POST /api/login (`isLogin`) or /api/password, with its JSON body; the password hashing
        /// runs on the thread pool.
        case password(JSONValue, isLogin: Bool)
        /// POST /whep with an SDP offer (UTF-8, not empty) and what admits its viewer.
        case createSession(offer: String, credential: ViewerCredential)
        case deleteSession(id: String)
        case patchSession(id: String)
        /// /whep/{id}/talk (TalkRoute).
        case talk
        /// PUT or DELETE /api/tls-certificate (the owner's).
        case certificate
    }

    static let talkSuffix = "/talk"

    static func isOutputPath(_ path: String) -> Bool {
        path == "/snapshot.jpg" || path == "/stream.mjpg" || path == "/metrics"
    }

    /// `servesOutputs`: the daemon has OutputEndpoints; `viewingIsLocked`: viewing needs a credential
    /// now (CameraRouter.viewingIsLocked).
    func decide(_ request: HTTPRequest, servesOutputs: Bool, viewingIsLocked: Bool, now: MonotonicTime) -> Decision {
        let bearer = RequestPolicy.isWHEP(request.path)
            ? tokens.tokenID(authorizationHeader: request.headers.first(name: "authorization")) : nil
        switch policy.decide(method: request.method, path: request.path, query: request.query,
                             host: request.headers.first(name: "host"), origin: request.headers.first(name: "origin"),
                             isSecureTransport: request.isSecureTransport, hasValidBearerToken: bearer != nil) {
        case .proceed:
            break
        case let .refuse(status, message):
            return .answer(Self.withCORS(.text(status, message), for: request))
        case let .redirect(location):
            return .answer(.text(.permanentRedirect, "this is served over HTTPS: \(location)", headers: [("Location", location)]))
        }
        if servesOutputs, Self.isOutputPath(request.path) { return .outputs }
        let decision = route(request, bearerTokenID: bearer, viewingIsLocked: viewingIsLocked, now: now)
        if case let .answer(response) = decision { return .answer(Self.withCORS(response, for: request)) }
        return decision
    }

    private func route(_ request: HTTPRequest, bearerTokenID: String?, viewingIsLocked: Bool, now: MonotonicTime) -> Decision {
        let path = request.path
        let owner = { isAuthenticated(request, now: now) }
        switch (request.method, path) {
        case (.POST, "/api/login"), (.POST, "/api/password"):
            return Self.jsonBody(of: request, unsupported: "send application/json")
                .map { .password($0, isLogin: path == "/api/login") }
        case (.PUT, "/api/config"):
            guard owner() else { return .answer(Self.loginRequired) }
            return Self.jsonBody(of: request, unsupported: "send the settings as application/json").map { .updateConfig($0) }
        case (.GET, "/"), (.HEAD, "/"), (.GET, "/index.html"):
            return .viewerPage
        case (.GET, "/settings"), (.HEAD, "/settings"):
            return .settingsPage
        case (.GET, "/healthz"):
            return .answer(.text(.ok, "ok"))
        case (.GET, "/api/session"):
            return .sessionState(authenticated: owner())
        case (.POST, "/api/logout"):
            return .logout
        case (.GET, "/api/tokens"):
            return owner() ? .listTokens : .answer(Self.loginRequired)
        case (.POST, "/api/tokens"):
            guard owner() else { return .answer(Self.loginRequired) }
            return Self.jsonBody(of: request, unsupported: "send {\"name\": \"...\"} as application/json").map { body in
                guard let name = body["name"]?.stringValue else { return .answer(.json(.badRequest, errorJSON("send {\"name\": \"...\"}"))) }
                return .createToken(name: name)
            }
        case (.GET, "/api/status"):
            return owner() ? .status : .answer(Self.loginRequired)
        case (.GET, "/api/devices"):
            return owner() ? .devices : .answer(Self.loginRequired)
        case (.GET, "/api/config"):
            return owner() ? .readConfig : .answer(Self.loginRequired)
        case (.OPTIONS, "/whep"):
            return .answer(Self.preflight(allowing: "POST, OPTIONS", extra: [("Accept-Post", "application/sdp")]))
        case (.POST, "/whep"):
            return createSession(request, bearerTokenID: bearerTokenID, viewingIsLocked: viewingIsLocked, now: now)
        case (_, "/whep"):
            return .answer(.text(.methodNotAllowed, "use POST with an SDP offer", headers: [("Allow", "POST, OPTIONS")]))
        default:
            break
        }
        if path.hasPrefix("/whep/"), path.hasSuffix(Self.talkSuffix) {
            return .talk
        }
        if path.hasPrefix("/whep/") {
            let id = String(path.dropFirst("/whep/".count))
            switch request.method {
            case .OPTIONS:
                return .answer(Self.preflight(allowing: "PATCH, DELETE, OPTIONS",
                                              extra: [("Accept-Patch", "application/trickle-ice-sdpfrag")]))
            case .DELETE:
                return .deleteSession(id: id)
            case .PATCH:
                return .patchSession(id: id)
            default:
                return .answer(.text(.methodNotAllowed, "use PATCH or DELETE on a session",
                                     headers: [("Allow", "PATCH, DELETE, OPTIONS")]))
            }
        }
        if path == "/api/tls-certificate" {
            return owner() ? .certificate : .answer(Self.loginRequired)
        }
        if path.hasPrefix("/api/tokens/") {
            guard request.method == .DELETE else {
                return .answer(.json(.methodNotAllowed, errorJSON("use DELETE to revoke a token"), headers: [("Allow", "DELETE")]))
            }
            return owner() ? .revokeToken(id: String(path.dropFirst("/api/tokens/".count))) : .answer(Self.loginRequired)
        }
        if path.hasPrefix("/api/") {
            return .answer(.json(.notFound, #"{"error":"no such API endpoint"}"#))
        }
        return .answer(.text(.notFound, "nothing at \(path)"))
    }

    /// POST /whep (RFC 9725 §4.2). Who may: anyone while viewing is open (no password yet, or
    /// protection off); else the owner's login session or a viewing token (`Authorization: Bearer`,
    /// RFC 9725 §4.5). The credential is remembered with the session, which ends when it stops being
    /// good enough.
    private func createSession(_ request: HTTPRequest, bearerTokenID: String?, viewingIsLocked: Bool,
                               now: MonotonicTime) -> Decision {
        let credential: ViewerCredential
        if let bearerTokenID {
            credential = .token(id: bearerTokenID)
        } else if let session = sessionID(request, now: now) {
            credential = .session(id: session)
        } else {
            credential = .none
        }
        if credential == .none, viewingIsLocked {
            let offered = request.headers.first(name: "authorization") != nil
            return .answer(.text(.unauthorized,
                                 offered ? "this viewing token is not valid (revoked or mistyped)"
                                     : "viewing this camera needs the password (log in at /settings) or a viewing token (Authorization: Bearer)",
                                 headers: [("WWW-Authenticate", offered ? #"Bearer realm="rtcam", error="invalid_token""# : #"Bearer realm="rtcam""#)]))
        }
        guard request.contentType == "application/sdp" else {
            return .answer(.text(.unsupportedMediaType,
                                 "a WHEP offer must be sent as Content-Type: application/sdp (got \(request.contentType ?? "none"))"))
        }
        guard let offer = String(validating: request.body, as: UTF8.self), !offer.isEmpty else {
            return .answer(.text(.badRequest, "the SDP offer is empty or not UTF-8"))
        }
        return .createSession(offer: offer, credential: credential)
    }

    // MARK: - Who is asking

    /// The owner's login session (the cookie), still open.
    func isAuthenticated(_ request: HTTPRequest, now: MonotonicTime) -> Bool {
        access.isAuthenticated(cookieHeader: request.headers.first(name: "cookie"), now: now)
    }

    func sessionID(_ request: HTTPRequest, now: MonotonicTime) -> String? {
        access.session(cookieHeader: request.headers.first(name: "cookie"), now: now)
    }

    /// A viewing token the camera knows: `Authorization: Bearer`, or `?token=` for players that
    /// cannot send headers (Home Assistant, NVRs, <img>).
    func hasViewingToken(_ request: HTTPRequest) -> Bool {
        if tokens.tokenID(authorizationHeader: request.headers.first(name: "authorization")) != nil { return true }
        if let value = QueryString.string(named: "token", in: request.query), tokens.tokenID(forValue: value) != nil { return true }
        return false
    }

    /// Stills and MJPEG are viewing: open while viewing is, else the owner's login or a viewing token.
    func mayView(_ request: HTTPRequest, viewingIsLocked: Bool, now: MonotonicTime) -> Bool {
        !viewingIsLocked || sessionID(request, now: now) != nil || hasViewingToken(request)
    }

    // MARK: - Answers

    static let loginRequired = HTTPResponse.json(.unauthorized, #"{"error":"log in on the settings page first"}"#)

    /// CORS for third-party WHEP players on other origins (RFC 9725 §4.8 leans on it).
    static let corsHeaders: [(String, String)] = [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Expose-Headers", "Location, Link, ETag, Accept-Patch, WWW-Authenticate"),
    ]

    static func withCORS(_ response: HTTPResponse, for request: HTTPRequest) -> HTTPResponse {
        guard RequestPolicy.isWHEP(request.path) else { return response }
        var response = response
        response.headers += corsHeaders
        return response
    }

    static func preflight(allowing methods: String, extra: [(String, String)]) -> HTTPResponse {
        HTTPResponse(status: .noContent, headers: [
            ("Access-Control-Allow-Methods", methods),
            ("Access-Control-Allow-Headers", "Content-Type, Authorization, If-Match"),
            ("Access-Control-Max-Age", "86400"),
        ] + extra)
    }

    /// A body read as JSON, or the answer refusing it: 415 unless it is application/json (with
    /// `unsupported` as the error), 400 with the parser's reason.
    enum JSONBody {
        case value(JSONValue)
        case refused(HTTPResponse)

        func map(_ transform: (JSONValue) -> Decision) -> Decision {
            switch self {
            case let .value(value): return transform(value)
            case let .refused(response): return .answer(response)
            }
        }
    }

    static func jsonBody(of request: HTTPRequest, unsupported: String) -> JSONBody {
        guard request.contentType == "application/json" else {
            return .refused(.json(.unsupportedMediaType, errorJSON(unsupported)))
        }
        do {
            return .value(try JSONValue(parsing: String(decoding: request.body, as: UTF8.self)))
        } catch {
            return .refused(.json(.badRequest, errorJSON("\(error)")))
        }
    }
}

/// What admitted a viewer (issue 16): nothing (viewing was open), an owner's login session (its id,
/// not the cookie), or a viewing token (its id). The router ends the sessions whose credential is no
/// longer good enough (`StreamHub.closeSessions(where:)`).
enum ViewerCredential: Equatable, Sendable {
    case none
    case session(id: String)
    case token(id: String)

    /// Admitted by the owner's login session.
    var isOwnerSession: Bool {
        if case .session = self { return true }
        return false
    }
}

/// A query string's `name=value` pairs (no percent-decoding: rtcam's values need none).
enum QueryString {
    enum Value: Equatable {
        case absent
        case value(Int)
        case invalid
    }

    /// `name=value` as an integer.
    static func integer(named name: String, in query: Substring) -> Value {
        guard let text = string(named: name, in: query) else { return .absent }
        guard text.count <= 9, let value = Int(text) else { return .invalid }
        return .value(value)
    }

    /// The raw value of the first `name=…`, or nil.
    static func string(named name: String, in query: Substring) -> String? {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2, parts[0] == name { return String(parts[1]) }
        }
        return nil
    }
}

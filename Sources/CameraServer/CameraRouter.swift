import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import RTCBase
import SystemSupport

/// The camera's HTTP surface: WHEP (draft-ietf-wish-whep, with WHIP's rules from RFC 9725), the viewer
/// and settings pages, and the JSON API. Runs on the hub's event loop; password hashing runs on a
/// thread pool. Every request first passes `RequestPolicy` (Host, Origin, HTTPS-only paths); what
/// each endpoint needs (nothing, a viewing credential, the owner's session, the setup code) is in
/// the README's HTTP table.
final class CameraRouter: HTTPRouting, @unchecked Sendable {  // confined to the hub's event loop
    private let hub: StreamHub
    private let access: AccessControl
    private let tokens: ViewingTokens
    private let talkback: TalkbackController?
    private let policy: RequestPolicy
    private let settings: SettingsController
    private let threadPool: NIOThreadPool
    private let status: () -> String
    private let devices: () -> String

    /// CORS for third-party WHEP players on other origins (RFC 9725 §4.8 leans on it).
    static let corsHeaders: [(String, String)] = [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Expose-Headers", "Location, Link, ETag, Accept-Patch, WWW-Authenticate"),
    ]

    /// The HTTPS certificate's SHA-256 ("AB:CD:…"), for the settings page: what a user compares with
    /// the browser's certificate warning. Set once HTTPS serves (nil: HTTPS off).
    let httpsFingerprint = NIOLockedValueBox<String?>(nil)
    /// The HTTPS listener's certificate switch (settings page: own certificate, or back to
    /// self-signed). Used on the event loop only; nil while HTTPS is off.
    let httpsCertificates = NIOLockedValueBox<NIOLoopBound<HTTPSCertificateSwitch>?>(nil)
    /// /snapshot.jpg, /stream.mjpg, /metrics (issue 21); set by the daemon before serving.
    var outputs: OutputEndpoints?
    /// RTSP's Digest secrets and its clients (issue 21); set by the daemon before serving (nil: RTSP off).
    var rtspCredentials: RTSPCredentials?
    var rtsp: RTSPServer?
    /// The viewer page as served: with the STUN servers filled in by the daemon (full ICE, `--stun`).
    var viewerPageHTML = ViewerPage.html

    init(hub: StreamHub, access: AccessControl, tokens: ViewingTokens, talkback: TalkbackController? = nil, policy: RequestPolicy,
         settings: SettingsController, threadPool: NIOThreadPool,
         status: @escaping () -> String, devices: @escaping () -> String) {
        self.hub = hub
        self.access = access
        self.tokens = tokens
        self.talkback = talkback
        self.policy = policy
        self.settings = settings
        self.threadPool = threadPool
        self.status = status
        self.devices = devices
    }

    func respond(to request: HTTPRequest, remote: SocketAddress?) -> EventLoopFuture<HTTPResponse> {
        let loop = hub.loop
        let bearer = RequestPolicy.isWHEP(request.path)
            ? tokens.tokenID(authorizationHeader: request.headers.first(name: "authorization")) : nil
        switch policy.decide(method: request.method, path: request.path, query: request.query,
                             host: request.headers.first(name: "host"), origin: request.headers.first(name: "origin"),
                             isSecureTransport: request.isSecureTransport, hasValidBearerToken: bearer != nil) {
        case .proceed:
            break
        case let .refuse(status, message):
            return loop.makeSucceededFuture(Self.withCORS(.text(status, message), for: request))
        case let .redirect(location):
            return loop.makeSucceededFuture(.text(.permanentRedirect, "this is served over HTTPS: \(location)",
                                                  headers: [("Location", location)]))
        }
        if let outputs, OutputEndpoints.handles(request.path) {
            return outputs.respond(to: request, mayView: { mayView(request) },
                                   mayReadMetrics: { isAuthenticated(request) || hasViewingToken(request) })
        }
        if let slow = slowRoute(request, remote: remote) {
            return slow.map { response in Self.withCORS(response, for: request) }
        }
        if request.method == .PUT, request.path == "/api/config" {
            return isAuthenticated(request) ? updateConfig(request) : loop.makeSucceededFuture(Self.loginRequired)
        }
        return loop.makeSucceededFuture(Self.withCORS(route(request, bearerTokenID: bearer), for: request))
    }

    /// Whether viewing needs a credential now: the settings say so and a password exists, or the saved
    /// configuration could not be read (then it is locked, never opened, until it is saved again).
    var viewingIsLocked: Bool {
        settings.loadProblem != nil || (settings.current.viewingRequiresPassword && access.hasPassword)
    }

    /// Ends at once the viewers whose credential no longer admits them: all anonymous ones and those of
    /// ended login sessions when viewing is locked; those of revoked tokens always.
    @discardableResult
    func endViewersNoLongerAllowed(reason: String) -> Int {
        rtsp?.endClientsNoLongerAllowed()
        let locked = viewingIsLocked
        let openSessions = access.openSessionIDs(now: MonotonicClock.now())
        let tokenIDs = tokens.ids
        return hub.closeSessions(where: { credential in
            switch credential {
            case .none: return locked
            case let .session(id): return locked && !openSessions.contains(id)
            case let .token(id): return !tokenIDs.contains(id)
            }
        }, reason: reason)
    }

    private static func withCORS(_ response: HTTPResponse, for request: HTTPRequest) -> HTTPResponse {
        guard request.path == "/whep" || request.path.hasPrefix("/whep/") else { return response }
        var response = response
        response.headers += corsHeaders
        return response
    }

    /// Stills and MJPEG are viewing: open while viewing is, else the owner's login or a viewing token
    /// (Bearer, or `?token=` for players that cannot send headers: Home Assistant, NVRs, <img>).
    func mayView(_ request: HTTPRequest) -> Bool {
        !viewingIsLocked || sessionID(request) != nil || hasViewingToken(request)
    }

    func hasViewingToken(_ request: HTTPRequest) -> Bool {
        if tokens.tokenID(authorizationHeader: request.headers.first(name: "authorization")) != nil { return true }
        if let value = OutputEndpoints.string(named: "token", in: request.query), tokens.tokenID(forValue: value) != nil { return true }
        return false
    }

    private func isAuthenticated(_ request: HTTPRequest) -> Bool {
        access.isAuthenticated(cookieHeader: request.headers.first(name: "cookie"), now: MonotonicClock.now())
    }

    private func sessionID(_ request: HTTPRequest) -> String? {
        access.session(cookieHeader: request.headers.first(name: "cookie"), now: MonotonicClock.now())
    }

    private static let loginRequired = HTTPResponse.json(
        .unauthorized, #"{"error":"log in on the settings page first"}"#)

    private func route(_ request: HTTPRequest, bearerTokenID: String?) -> HTTPResponse {
        let path = request.path
        switch (request.method, path) {
        case (.GET, "/"), (.HEAD, "/"), (.GET, "/index.html"):
            return .html(viewerPageHTML, headers: [("Content-Security-Policy", ContentSecurityPolicy.viewerPage)])
        case (.GET, "/settings"), (.HEAD, "/settings"):
            return .html(SettingsPage.html, headers: [("Content-Security-Policy", ContentSecurityPolicy.settingsPage)])
        case (.GET, "/healthz"):
            return .text(.ok, "ok")
        case (.GET, "/api/session"):
            return .json(.ok, sessionJSON(authenticated: isAuthenticated(request)))
        case (.POST, "/api/logout"):
            access.logout(cookieHeader: request.headers.first(name: "cookie"))
            endViewersNoLongerAllowed(reason: "its owner logged out")
            return .json(.ok, #"{"loggedOut":true}"#,
                         headers: [("Set-Cookie", AccessControl.expiredCookie(secure: request.isSecureTransport))])
        case (.GET, "/api/tokens"):
            return isAuthenticated(request) ? .json(.ok, tokensJSON()) : Self.loginRequired
        case (.POST, "/api/tokens"):
            return isAuthenticated(request) ? createToken(request) : Self.loginRequired
        case (.GET, "/api/status"):
            return isAuthenticated(request) ? .json(.ok, status()) : Self.loginRequired
        case (.GET, "/api/devices"):
            return isAuthenticated(request) ? .json(.ok, devices()) : Self.loginRequired
        case (.GET, "/api/config"):
            return isAuthenticated(request) ? .json(.ok, settings.configJSON()) : Self.loginRequired
        case (.OPTIONS, "/whep"):
            return preflight(allowing: "POST, OPTIONS", extra: [("Accept-Post", "application/sdp")])
        case (.POST, "/whep"):
            return createSession(request, bearerTokenID: bearerTokenID)
        case (_, "/whep"):
            return .text(.methodNotAllowed, "use POST with an SDP offer", headers: [("Allow", "POST, OPTIONS")])
        default:
            break
        }
        if path.hasPrefix("/whep/"), path.hasSuffix(TalkRoute.suffix) {
            return TalkRoute.respond(to: request, talkback: talkback, hub: hub, isOwner: isAuthenticated(request))
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
        if path == "/api/tls-certificate" {
            guard isAuthenticated(request) else { return Self.loginRequired }
            return changeCertificate(request)
        }
        if path.hasPrefix("/api/tokens/") {
            guard request.method == .DELETE else {
                return .json(.methodNotAllowed, errorJSON("use DELETE to revoke a token"), headers: [("Allow", "DELETE")])
            }
            return isAuthenticated(request) ? revokeToken(id: String(path.dropFirst("/api/tokens/".count))) : Self.loginRequired
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
        // Failed logins are counted per host: IPv4 as itself (v4-mapped too), IPv6 by its /64.
        let address = remote.flatMap(TransportAddress.init)?.ip.hostLimitKey.description ?? "unknown"
        let access = access
        // A request that already has a session is never throttled: the owner cannot be locked out.
        let authenticated = isAuthenticated(request)
        let isLogin = request.path == "/api/login"
        let secure = request.isSecureTransport
        let choice = isLogin || access.hasPassword ? nil : body["viewingRequiresPassword"]
        if let choice, choice.boolValue == nil {
            return loop.makeSucceededFuture(.json(.badRequest, errorJSON("viewingRequiresPassword must be true or false")))
        }
        let viewingChoice = choice?.boolValue
        let rtspCredentials = rtspCredentials
        let answer = threadPool.runIfActive(eventLoop: loop) { () -> (HTTPResponse, changed: Bool) in
            let now = MonotonicClock.now()
            do {
                let token: String
                if isLogin {
                    guard let password = body["password"]?.stringValue else {
                        return (.json(.badRequest, #"{"error":"send {\"password\": \"...\"}"}"#), false)
                    }
                    token = try access.login(password: password, address: address, exempt: authenticated, now: now).cookie
                } else if !access.hasPassword {
                    guard let password = body["password"]?.stringValue else {
                        return (.json(.badRequest, #"{"error":"send {\"password\": \"...\", \"setupCode\": \"...\"}"}"#), false)
                    }
                    token = try access.setInitialPassword(password, setupCode: body["setupCode"]?.stringValue,
                                                          address: address, now: now).cookie
                } else {
                    guard authenticated else { return (Self.loginRequired, false) }
                    guard let current = body["currentPassword"]?.stringValue, let new = body["newPassword"]?.stringValue else {
                        return (.json(.badRequest, #"{"error":"send {\"currentPassword\": \"...\", \"newPassword\": \"...\"}"}"#), false)
                    }
                    token = try access.changePassword(current: current, new: new, address: address, exempt: true, now: now).cookie
                }
                // RTSP's Digest needs its own form of the password (RTSPCredentials), made while it is known.
                let accepted = isLogin || body["currentPassword"] == nil ? body["password"]?.stringValue : body["newPassword"]?.stringValue
                if let accepted { rtspCredentials?.setPassword(accepted) }
                return (.json(.ok, #"{"authenticated":true}"#,
                              headers: [("Set-Cookie", AccessControl.cookie(for: token, secure: secure))]), !isLogin)
            } catch let failure as AccessControl.Failure {
                return (Self.response(to: failure), false)
            } catch {
                return (.json(.internalServerError, errorJSON("could not save the password: \(error)")), false)
            }
        }
        return answer.flatMap { [self] response, changed in
            guard changed else { return loop.makeSucceededFuture(response) }
            // A new password: the first one turns protection on (with the choice made on the page),
            // a changed one ends every other session; viewers they admitted go now.
            let applied: EventLoopFuture<String?>
            if let viewingChoice, viewingChoice != settings.current.viewingRequiresPassword {
                applied = settings.update(with: .object([("viewingRequiresPassword", .bool(viewingChoice))])).map { result in
                    switch result {
                    case .success: return nil
                    case let .invalid(errors):
                        return "the viewing choice was not applied: " + errors.map { "\($0.field): \($0.message)" }.joined(separator: "; ")
                    case let .saveFailed(message): return "the viewing choice is \(message)"
                    }
                }
            } else {
                applied = loop.makeSucceededFuture(nil)
            }
            return applied.map { [self] problem in
                endViewersNoLongerAllowed(reason: "the password was set or changed")
                guard let problem else { return response }
                // The password is set (that cannot be undone here); the page shows what was not.
                var answer = JSONWriter()
                answer.beginObject()
                answer.field("authenticated", true)
                answer.field("warning", "Password set, but \(problem).")
                answer.endObject()
                return .json(.ok, answer.text, headers: response.headers.filter { $0.0 == "Set-Cookie" })
            }
        }
    }

    private static func response(to failure: AccessControl.Failure) -> HTTPResponse {
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
        case let .setupCodeRequired(location):
            return .json(.forbidden, errorJSON("the first password needs the setup code; find it in \(location)"))
        case let .wrongSetupCode(location):
            return .json(.forbidden, errorJSON("wrong setup code; find the right one in \(location)"))
        }
    }

    // MARK: - Viewing tokens

    private func tokensJSON() -> String {
        var json = JSONWriter()
        json.beginObject()
        json.key("tokens")
        json.beginArray()
        for token in tokens.list {
            json.beginObject()
            json.field("id", token.id)
            json.field("name", token.name)
            json.endObject()
        }
        json.endArray()
        json.field("problem", tokens.loadProblem)
        json.endObject()
        return json.text
    }

    /// POST /api/tokens {"name": "..."}: 201 with the token's value, shown this once.
    /// PUT /api/tls-certificate {"certificate": PEM chain, "key": PEM}: HTTPS presents it from now on
    /// (and after restarts). DELETE: back to the self-signed certificate.
    private func changeCertificate(_ request: HTTPRequest) -> HTTPResponse {
        guard let certificates = httpsCertificates.withLockedValue({ $0 }) else {
            return .json(.conflict, errorJSON("HTTPS is off (--https-port 0)"))
        }
        let result: Result<String, HTTPSCertificateSwitch.Failure>
        switch request.method {
        case .PUT:
            guard request.contentType == "application/json",
                  let body = try? JSONValue(parsing: String(decoding: request.body, as: UTF8.self)),
                  let chain = body["certificate"]?.stringValue, let key = body["key"]?.stringValue else {
                return .json(.badRequest, errorJSON("send {\"certificate\": \"-----BEGIN CERTIFICATE-----…\", \"key\": \"-----BEGIN … PRIVATE KEY-----…\"} as application/json"))
            }
            result = Result { () throws(HTTPSCertificateSwitch.Failure) in try certificates.value.useOwn(chain: chain, key: key) }
        case .DELETE:
            result = Result { () throws(HTTPSCertificateSwitch.Failure) in try certificates.value.useSelfSigned() }
        default:
            return .json(.methodNotAllowed, errorJSON("use PUT (your certificate) or DELETE (back to self-signed)"),
                         headers: [("Allow", "PUT, DELETE")])
        }
        switch result {
        case let .success(fingerprint):
            httpsFingerprint.withLockedValue { $0 = fingerprint }
            return .json(.ok, #"{"fingerprint":"# + fingerprint.jsonQuoted + "}")
        case let .failure(failure):
            if case .fixedByCommandLine = failure { return .json(.conflict, errorJSON(failure.description)) }
            return .json(.badRequest, errorJSON(failure.description))
        }
    }

    private func createToken(_ request: HTTPRequest) -> HTTPResponse {
        guard request.contentType == "application/json" else {
            return .json(.unsupportedMediaType, errorJSON("send {\"name\": \"...\"} as application/json"))
        }
        let body: JSONValue
        do {
            body = try JSONValue(parsing: String(decoding: request.body, as: UTF8.self))
        } catch {
            return .json(.badRequest, errorJSON("\(error)"))
        }
        guard let name = body["name"]?.stringValue else { return .json(.badRequest, errorJSON("send {\"name\": \"...\"}")) }
        do {
            let (id, value) = try tokens.create(name: name)
            rtspCredentials?.setToken(id: id, value: value)
            var json = JSONWriter()
            json.beginObject()
            json.field("id", id)
            json.field("name", name.trimmingSpaces)
            json.field("token", value)
            json.endObject()
            return .json(.created, json.text, headers: [("Location", "/api/tokens/\(id)"), ("Cache-Control", "no-store")])
        } catch {
            return Self.response(to: error)
        }
    }

    /// DELETE /api/tokens/{id}: the token stops working and its viewers are ended at once.
    private func revokeToken(id: String) -> HTTPResponse {
        do {
            try tokens.revoke(id: id)
            rtspCredentials?.removeToken(id: id)
        } catch {
            return Self.response(to: error)
        }
        let ended = endViewersNoLongerAllowed(reason: "its viewing token was revoked")
        var json = JSONWriter()
        json.beginObject()
        json.field("revoked", id)
        json.field("viewersEnded", ended)
        json.endObject()
        return .json(.ok, json.text)
    }

    private static func response(to failure: ViewingTokens.Failure) -> HTTPResponse {
        switch failure {
        case let .invalidName(reason): return .json(.badRequest, errorJSON(reason))
        case let .tooMany(limit): return .json(.conflict, errorJSON("at most \(limit) tokens: revoke one first"))
        case .unknownToken: return .json(.notFound, errorJSON("no such token"))
        case let .saveFailed(reason): return .json(.internalServerError, errorJSON(reason))
        }
    }

    private func sessionJSON(authenticated: Bool) -> String {
        var json = JSONWriter()
        json.beginObject()
        json.field("passwordSet", access.hasPassword)
        json.field("authenticated", authenticated)
        json.field("viewingRequiresPassword", settings.current.viewingRequiresPassword)
        json.field("viewingLocked", viewingIsLocked)
        json.field("setupCodeLocation", access.hasPassword ? nil : access.setupCodeLocation)
        json.field("httpsFingerprint", httpsFingerprint.withLockedValue { $0 })
        json.field("configProblem", settings.loadProblem)
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
        return settings.update(with: body).map { [self] result in
            if case .success = result { endViewersNoLongerAllowed(reason: "viewing now needs the password") }
            return response(to: result)
        }
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
    /// Who may: anyone while viewing is open (no password yet, or protection off); else the owner's
    /// login session or a viewing token (`Authorization: Bearer`, RFC 9725 §4.5). The credential is
    /// remembered with the session, which ends when it stops being good enough.
    private func createSession(_ request: HTTPRequest, bearerTokenID: String?) -> HTTPResponse {
        let credential: ViewerCredential
        if let bearerTokenID {
            credential = .token(id: bearerTokenID)
        } else if let session = sessionID(request) {
            credential = .session(id: session)
        } else {
            credential = .none
        }
        if credential == .none, viewingIsLocked {
            let offered = request.headers.first(name: "authorization") != nil
            return .text(.unauthorized,
                         offered ? "this viewing token is not valid (revoked or mistyped)"
                             : "viewing this camera needs the password (log in at /settings) or a viewing token (Authorization: Bearer)",
                         headers: [("WWW-Authenticate", offered ? #"Bearer realm="rtcam", error="invalid_token""# : #"Bearer realm="rtcam""#)])
        }
        guard request.contentType == "application/sdp" else {
            return .text(.unsupportedMediaType,
                         "a WHEP offer must be sent as Content-Type: application/sdp (got \(request.contentType ?? "none"))")
        }
        guard let offer = String(validating: request.body, as: UTF8.self), !offer.isEmpty else {
            return .text(.badRequest, "the SDP offer is empty or not UTF-8")
        }
        do {
            let (id, answer) = try hub.createSession(offer: offer, credential: credential,
                                                     from: request.remoteAddress.flatMap(TransportAddress.init)?.ip)
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
            case let .tooManyPending(limit):
                return .text(.tooManyRequests, "\(limit) sessions from this address are still connecting; try again later",
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

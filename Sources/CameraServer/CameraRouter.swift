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
    private let front: RequestFront
    private let settings: SettingsController
    private let threadPool: NIOThreadPool
    private let status: () -> String
    private let devices: () -> String

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
        front = RequestFront(policy: policy, access: access, tokens: tokens)
        self.settings = settings
        self.threadPool = threadPool
        self.status = status
        self.devices = devices
    }

    func respond(to request: HTTPRequest, remote: SocketAddress?) -> EventLoopFuture<HTTPResponse> {
        let loop = hub.loop
        let now = MonotonicClock.now()
        let decision = front.decide(request, servesOutputs: outputs != nil, viewingIsLocked: viewingIsLocked, now: now)
        switch decision {
        case let .answer(response):
            return loop.makeSucceededFuture(response)
        case .outputs:
            guard let outputs else { return loop.makeSucceededFuture(.text(.notFound, "nothing at \(request.path)")) }
            return outputs.respond(to: request, mayView: { front.mayView(request, viewingIsLocked: viewingIsLocked, now: now) },
                                   mayReadMetrics: { isAuthenticated(request) || front.hasViewingToken(request) })
        case let .password(body, isLogin):
            return password(body, isLogin: isLogin, request, remote: remote)
        case let .updateConfig(body):
            return updateConfig(body)
        default:
            return loop.makeSucceededFuture(RequestFront.withCORS(perform(decision, request), for: request))
        }
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

    private func isAuthenticated(_ request: HTTPRequest) -> Bool {
        front.isAuthenticated(request, now: MonotonicClock.now())
    }

    /// The work of a decision that needs the camera's state and answers at once.
    private func perform(_ decision: RequestFront.Decision, _ request: HTTPRequest) -> HTTPResponse {
        switch decision {
        case let .answer(response):
            return response
        case .viewerPage:
            return .html(viewerPageHTML, headers: [("Content-Security-Policy", ContentSecurityPolicy.viewerPage)])
        case .settingsPage:
            return .html(SettingsPage.html, headers: [("Content-Security-Policy", ContentSecurityPolicy.settingsPage)])
        case let .sessionState(authenticated):
            return .json(.ok, sessionJSON(authenticated: authenticated))
        case .logout:
            access.logout(cookieHeader: request.headers.first(name: "cookie"))
            endViewersNoLongerAllowed(reason: "its owner logged out")
            return .json(.ok, #"{"loggedOut":true}"#,
                         headers: [("Set-Cookie", AccessControl.expiredCookie(secure: request.isSecureTransport))])
        case .listTokens:
            return .json(.ok, tokensJSON())
        case let .createToken(name):
            return createToken(name: name)
        case let .revokeToken(id):
            return revokeToken(id: id)
        case .status:
            return .json(.ok, status())
        case .devices:
            return .json(.ok, devices())
        case .readConfig:
            return .json(.ok, settings.configJSON())
        case let .createSession(offer, credential):
            return createSession(offer: offer, credential: credential, request)
        case let .deleteSession(id):
            return hub.deleteSession(id: id)
                ? .text(.ok, "session \(id) ended")
                : .text(.notFound, "no WHEP session \(id)")
        case let .patchSession(id):
            return patchSession(id: id, request)
        case .talk:
            return TalkRoute.respond(to: request, talkback: talkback, hub: hub, isOwner: isAuthenticated(request))
        case .certificate:
            return changeCertificate(request)
        case .outputs, .password, .updateConfig:
            // Answered with a future (CameraRouter.respond).
            return .text(.internalServerError, "internal error")
        }
    }

    // MARK: - Password and login (PBKDF2 on the thread pool)

    /// POST /api/login and /api/password: the body is JSON already (RequestFront).
    private func password(_ body: JSONValue, isLogin: Bool, _ request: HTTPRequest,
                          remote: SocketAddress?) -> EventLoopFuture<HTTPResponse> {
        let loop = hub.loop
        // Failed logins are counted per host: IPv4 as itself (v4-mapped too), IPv6 by its /64.
        let address = remote.flatMap(TransportAddress.init)?.ip.hostLimitKey.description ?? "unknown"
        let access = access
        // A request that already has a session is never throttled: the owner cannot be locked out.
        let authenticated = isAuthenticated(request)
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
                    guard authenticated else { return (RequestFront.loginRequired, false) }
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

    private func createToken(name: String) -> HTTPResponse {
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
    private func updateConfig(_ body: JSONValue) -> EventLoopFuture<HTTPResponse> {
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

    /// POST /whep (RFC 9725 §4.2): 201 with the answer and the session's Location. Who may is
    /// RequestFront's to decide; the credential it found is remembered with the session.
    private func createSession(offer: String, credential: ViewerCredential, _ request: HTTPRequest) -> HTTPResponse {
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

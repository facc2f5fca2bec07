import NIOHTTP1
import RTCBase
import Testing
@testable import CameraServer

/// RequestFront: the decisions CameraRouter takes from a request alone (the http fuzz target drives
/// the same code with hostile requests).
@Suite struct RequestFrontTests {
    let directory = TemporaryDirectory()
    let access: AccessControl
    let tokens: ViewingTokens
    let cookie: String
    let tokenValue: String
    let now = MonotonicTime(seconds: 100)

    init() throws {
        access = AccessControl(stateDirectory: directory.path, passwordIterations: 1_000)
        let code = try #require(access.prepareSetupCode()).code
        cookie = try access.setInitialPassword("correct horse battery", setupCode: code, address: "test", now: now).cookie
        tokens = ViewingTokens(stateDirectory: directory.path)
        tokenValue = try tokens.create(name: "player").value
    }

    func front(httpsPort: Int? = nil) -> RequestFront {
        RequestFront(policy: RequestPolicy(hostName: "cam", httpsPort: httpsPort), access: access, tokens: tokens)
    }

    func request(_ method: HTTPMethod, _ uri: String, _ headers: [(String, String)] = [], body: String = "",
                 secure: Bool = false) -> HTTPRequest {
        let (path, query) = HTTPRequest.split(uri: uri)
        return HTTPRequest(method: method, path: path, query: query, headers: HTTPHeaders([("Host", "192.0.2.7:8080")] + headers),
                           body: Array(body.utf8), isSecureTransport: secure)
    }

    func decide(_ request: HTTPRequest, locked: Bool = true, httpsPort: Int? = nil) -> RequestFront.Decision {
        front(httpsPort: httpsPort).decide(request, servesOutputs: true, viewingIsLocked: locked, now: now + .seconds(1))
    }

    func status(_ decision: RequestFront.Decision) -> HTTPResponseStatus? {
        if case let .answer(response) = decision { return response.status }
        return nil
    }

    @Test func theOwnersEndpointsNeedTheLiveCookie() {
        let owner = [("Cookie", "theme=dark; rtcam_session=\(cookie)")]
        for (method, uri) in [(HTTPMethod.GET, "/api/tokens"), (.GET, "/api/status"), (.GET, "/api/config"),
                              (.DELETE, "/api/tokens/abc"), (.PUT, "/api/tls-certificate")] {
            #expect(status(decide(request(method, uri))) == .unauthorized, "\(uri) without a cookie")
            #expect(status(decide(request(method, uri, [("Cookie", "rtcam_session=0000")]))) == .unauthorized)
            #expect(status(decide(request(method, uri, owner))) == nil, "\(uri) with the owner's cookie")
        }
        guard case let .revokeToken(id) = decide(request(.DELETE, "/api/tokens/abc", owner)) else {
            Issue.record("DELETE /api/tokens/abc is not a revocation")
            return
        }
        #expect(id == "abc")
    }

    @Test func jsonBodiesAreDecodedOrRefused() {
        let owner = [("Cookie", "rtcam_session=\(cookie)")]
        let json = [("Content-Type", "application/json; charset=utf-8")]
        guard case let .createToken(name) = decide(request(.POST, "/api/tokens", owner + json, body: #"{"name":"NVR"}"#)) else {
            Issue.record("a token request was not decoded")
            return
        }
        #expect(name == "NVR")
        #expect(status(decide(request(.POST, "/api/tokens", owner, body: #"{"name":"NVR"}"#))) == .unsupportedMediaType)
        #expect(status(decide(request(.POST, "/api/tokens", owner + json, body: #"{"name":"#))) == .badRequest)
        #expect(status(decide(request(.POST, "/api/tokens", owner + json, body: #"{"title":"NVR"}"#))) == .badRequest)
        #expect(status(decide(request(.PUT, "/api/config", json, body: "{}"))) == .unauthorized, "the cookie comes before the body")
        guard case .password(_, isLogin: true) = decide(request(.POST, "/api/login", json, body: #"{"password":"x"}"#)) else {
            Issue.record("a login was not decoded")
            return
        }
    }

    @Test func whepAdmitsByTokenSessionOrOpenViewingAndAddsCORS() {
        let sdp = [("Content-Type", "application/sdp")]
        let offer = "v=0\r\n"
        guard case let .createSession(_, credential) = decide(request(.POST, "/whep", sdp + [("Authorization", "Bearer \(tokenValue)")], body: offer)) else {
            Issue.record("a valid token was not admitted")
            return
        }
        #expect(credential != .none)
        guard case let .answer(refused) = decide(request(.POST, "/whep", sdp + [("Authorization", "Bearer rtcam_nope")], body: offer)) else {
            Issue.record("a wrong token was admitted")
            return
        }
        #expect(refused.status == .unauthorized)
        #expect(refused.header("Access-Control-Allow-Origin") == "*", "WHEP answers carry CORS")
        guard case .createSession(_, .none) = decide(request(.POST, "/whep", sdp, body: offer), locked: false) else {
            Issue.record("open viewing did not admit an anonymous viewer")
            return
        }
        #expect(status(decide(request(.POST, "/whep", [("Content-Type", "text/plain")], body: offer), locked: false)) == .unsupportedMediaType)
        #expect(status(decide(request(.POST, "/whep", sdp, body: ""), locked: false)) == .badRequest)
        // A third-party player's Origin passes with a token, not without.
        let foreign = [("Origin", "https://player.example")]
        #expect(status(decide(request(.POST, "/whep", sdp + foreign, body: offer), locked: false)) == .forbidden)
        if case .answer = decide(request(.POST, "/whep", sdp + foreign + [("Authorization", "Bearer \(tokenValue)")], body: offer)) {
            Issue.record("a token holder's player on another origin was refused")
        }
    }

    @Test func pathsAndQueriesAreParsed() {
        guard case let .patchSession(id) = decide(request(.PATCH, "/whep/s1?x=1")) else {
            Issue.record("PATCH /whep/s1 is not a session patch")
            return
        }
        #expect(id == "s1")
        guard case .talk = decide(request(.POST, "/whep/s1/talk")) else {
            Issue.record("/whep/s1/talk is not the talk route")
            return
        }
        guard case .outputs = decide(request(.GET, "/snapshot.jpg?width=64&token=\(tokenValue)")) else {
            Issue.record("/snapshot.jpg is not an output")
            return
        }
        #expect(front().mayView(request(.GET, "/snapshot.jpg?width=64&token=\(tokenValue)"), viewingIsLocked: true, now: now))
        #expect(!front().mayView(request(.GET, "/snapshot.jpg?token=rtcam_x"), viewingIsLocked: true, now: now))
        #expect(QueryString.integer(named: "width", in: "fps=2&width=640") == .value(640))
        #expect(QueryString.integer(named: "width", in: "width=1e9") == .invalid)
        #expect(QueryString.integer(named: "width", in: "widths=1") == .absent)
        #expect(status(decide(request(.GET, "/api/nothing"))) == .notFound)
        #expect(status(decide(request(.GET, "/nothing"))) == .notFound)
    }

    @Test func theSettingsAreRedirectedToHTTPSOnceItIsOn() {
        guard case let .answer(response) = decide(request(.GET, "/settings?tab=1"), httpsPort: 8443) else {
            Issue.record("/settings was served on plain HTTP")
            return
        }
        #expect(response.status == .permanentRedirect)
        #expect(response.header("Location") == "https://192.0.2.7:8443/settings?tab=1")
        guard case .settingsPage = decide(request(.GET, "/settings", secure: true), httpsPort: 8443) else {
            Issue.record("/settings over TLS was not the page")
            return
        }
    }
}

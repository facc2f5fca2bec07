import DTLS
import NIOHTTP1
import Testing
@testable import CameraServer

@Suite struct RequestPolicyTests {
    let policy = RequestPolicy(hostName: "rtcam-kitchen", extraNames: ["Camera.Example.NET."])

    private func decide(_ method: HTTPMethod = .GET, _ path: String = "/", host: String?, origin: String? = nil,
                        secure: Bool = false, token: Bool = false, using policy: RequestPolicy? = nil) -> RequestPolicy.Decision {
        (policy ?? self.policy).decide(method: method, path: path, query: "", host: host, origin: origin,
                                       isSecureTransport: secure, hasValidBearerToken: token)
    }

    @Test(arguments: ["192.168.1.20:8080", "127.0.0.1", "[::1]:8080", "[fe80::1%25eth0]", "[2001:db8::7]",
                      "localhost:8080", "LOCALHOST", "rtcam-kitchen", "rtcam-kitchen.local:8080", "rtcam-kitchen.local.",
                      "camera.example.net", "[::ffff:10.0.0.1]:80"])
    func theCamerasOwnNamesAndLiteralAddressesAreAccepted(_ host: String) {
        #expect(decide(host: host) == .proceed)
    }

    @Test(arguments: ["attacker.example", "attacker.example:8080", "rtcam-kitchen.attacker.example", "192.168.1.20.nip.io",
                      "1.2.3.4.5", "256.1.1.1", "", "a:b:c", "[::1", "[::1]x", "localhost:99999", "::1", "evil.local"])
    func anyOtherNameIsMisdirected(_ host: String) {
        guard case .refuse(.misdirectedRequest, let message) = decide(host: host) else {
            Issue.record("\(host) was not refused with 421")
            return
        }
        #expect(message.contains("DNS rebinding"))
    }

    @Test func noHostHeaderIsNotABrowserAndPasses() {
        #expect(decide(host: nil) == .proceed)
    }

    @Test func foreignOriginsCannotChangeStateButTheSameOriginCan() {
        let host = "192.168.1.20:8080"
        #expect(decide(.POST, "/api/login", host: host, origin: "http://192.168.1.20:8080") == .proceed)
        #expect(decide(.PUT, "/api/config", host: "rtcam-kitchen.local", origin: "http://rtcam-kitchen.local:80") == .proceed)
        #expect(decide(.POST, "/api/login", host: host) == .proceed, "no Origin: not a cross-site browser request")
        for (method, origin) in [(HTTPMethod.POST, "http://evil.example"), (.PUT, "http://192.168.1.20:8081"),
                                 (.DELETE, "https://192.168.1.20:8080"), (.PATCH, "null"), (.POST, "http://192.168.1.20")] {
            guard case .refuse(.forbidden, _) = decide(method, "/api/config", host: host, origin: origin) else {
                Issue.record("\(method) from \(origin) was not refused")
                continue
            }
        }
        // Reading is not state-changing; WHEP with a valid token may come from any origin (third-party players).
        #expect(decide(.GET, "/api/session", host: host, origin: "http://evil.example") == .proceed)
        #expect(decide(.POST, "/whep", host: host, origin: "https://player.example", token: true) == .proceed)
        #expect(decide(.DELETE, "/whep/abc", host: host, origin: "https://player.example", token: true) == .proceed)
        #expect(decide(.POST, "/whep", host: host, origin: "https://player.example") != .proceed)
        #expect(decide(.POST, "/api/tokens", host: host, origin: "https://player.example", token: true) != .proceed)
        // Over TLS the origin's scheme is https.
        #expect(decide(.POST, "/api/login", host: "192.168.1.20:8443", origin: "https://192.168.1.20:8443", secure: true) == .proceed)
        #expect(decide(.POST, "/api/login", host: "192.168.1.20:8443", origin: "http://192.168.1.20:8443", secure: true) != .proceed)
    }

    @Test func onceHTTPSIsOnTheSettingsAndTheAPIRedirectToIt() {
        let https = RequestPolicy(hostName: "rtcam-kitchen", httpsPort: 8443)
        #expect(decide(.GET, "/settings", host: "192.168.1.20:8080", using: https) == .redirect(location: "https://192.168.1.20:8443/settings"))
        #expect(decide(.POST, "/api/password", host: "rtcam-kitchen.local:8080", using: https)
                == .redirect(location: "https://rtcam-kitchen.local:8443/api/password"))
        #expect(decide(.GET, "/api/session", host: "[fe80::2]:8080", using: https) == .redirect(location: "https://[fe80::2]:8443/api/session"))
        let withQuery = https.decide(method: .GET, path: "/api/config", query: "a=1", host: "10.0.0.2", origin: nil,
                                     isSecureTransport: false, hasValidBearerToken: false)
        #expect(withQuery == .redirect(location: "https://10.0.0.2:8443/api/config?a=1"))
        // The viewer page, WHEP and health stay on both; over TLS nothing is redirected.
        for path in ["/", "/whep", "/whep/abc", "/healthz"] { #expect(decide(.GET, path, host: "10.0.0.2", using: https) == .proceed) }
        #expect(decide(.POST, "/api/login", host: "10.0.0.2:8443", secure: true, using: https) == .proceed)
        // HTTPS off: nothing redirects.
        #expect(decide(.GET, "/settings", host: "10.0.0.2:8080") == .proceed)
    }

    @Test func literalAddresses() {
        for text in ["0.0.0.0", "255.255.255.255", "::", "::1", "fe80::1%eth0", "2001:db8:0:0:0:0:0:1", "::ffff:1.2.3.4"] {
            #expect(TransportAddressText.isLiteralIP(text), "\(text)")
        }
        for text in ["1.2.3", "01234.1.1.1", "1::2::3", "2001:db8:0:0:0:0:0:0:1", "12345::", "g::1", "example.com", ""] {
            #expect(!TransportAddressText.isLiteralIP(text), "\(text)")
        }
    }
}

@Suite struct ViewingTokenTests {
    @Test func tokensAreStoredHashedShownOnceAndRevocable() throws {
        let directory = TemporaryDirectory()
        let tokens = ViewingTokens(stateDirectory: directory.path)
        let (id, value) = try tokens.create(name: "  living-room tablet ")
        #expect(value.hasPrefix(ViewingTokens.prefix) && value.count == ViewingTokens.prefix.count + 48)
        #expect(tokens.tokenID(forValue: value) == id)
        #expect(tokens.tokenID(authorizationHeader: "Bearer \(value)") == id)
        #expect(tokens.tokenID(authorizationHeader: "bearer   \(value) ") == id)
        #expect(tokens.tokenID(authorizationHeader: "Basic \(value)") == nil)
        #expect(tokens.tokenID(forValue: value + "0") == nil)
        #expect(tokens.tokenID(forValue: String(value.dropLast())) == nil)
        let file = try #require(directory.read("viewing-tokens"))
        #expect(!file.contains(value), "only the hash is stored")
        #expect(file.contains(Hex.encode(MbedDigest.sha256(Array(value.utf8)))))
        #expect(tokens.list.map(\.name) == ["living-room tablet"])
        // A restarted daemon knows it.
        let restarted = ViewingTokens(stateDirectory: directory.path)
        #expect(restarted.tokenID(forValue: value) == id)
        try restarted.revoke(id: id)
        #expect(restarted.tokenID(forValue: value) == nil)
        #expect(throws: ViewingTokens.Failure.unknownToken) { try restarted.revoke(id: id) }
        #expect(ViewingTokens(stateDirectory: directory.path).ids.isEmpty)
    }

    @Test func badNamesAndACorruptFileAreRefusedAndNeverOpenAnything() throws {
        let directory = TemporaryDirectory()
        let tokens = ViewingTokens(stateDirectory: directory.path)
        #expect(throws: ViewingTokens.Failure.self) { _ = try tokens.create(name: "  ") }
        #expect(throws: ViewingTokens.Failure.self) { _ = try tokens.create(name: "a\tb") }
        #expect(throws: ViewingTokens.Failure.self) { _ = try tokens.create(name: String(repeating: "x", count: 65)) }
        directory.write("viewing-tokens", "garbage\n")
        let corrupt = ViewingTokens(stateDirectory: directory.path)
        #expect(corrupt.loadProblem != nil && corrupt.ids.isEmpty)
        let (_, value) = try corrupt.create(name: "new")
        #expect(directory.read("viewing-tokens.corrupt") == "garbage\n")
        #expect(ViewingTokens(stateDirectory: directory.path).tokenID(forValue: value) != nil)
    }
}

@Suite struct ContentSecurityPolicyTests {
    @Test func pagesAllowTheirOwnInlineScriptAndStyleByHashAndTheSettingsCannotBeFramed() throws {
        let settings = ContentSecurityPolicy.settingsPage
        let script = try #require(ContentSecurityPolicy.inlineBlocks(of: "script", in: SettingsPage.html).first)
        #expect(settings.contains("script-src 'sha256-\(Base64.encode(MbedDigest.sha256(Array(script.utf8))))'"))
        #expect(settings.contains("frame-ancestors 'none'"))
        #expect(!settings.contains("unsafe-inline"))
        #expect(ContentSecurityPolicy.viewerPage.contains("script-src 'sha256-"))
        #expect(ContentSecurityPolicy.viewerPage.contains("style-src 'sha256-"))
        #expect(ContentSecurityPolicy.other.hasPrefix("default-src 'none'"))
    }

    @Test func base64() {
        #expect(Base64.encode([]) == "")
        #expect(Base64.encode(Array("f".utf8)) == "Zg==")
        #expect(Base64.encode(Array("fo".utf8)) == "Zm8=")
        #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(Base64.encode([0xFB, 0xFF]) == "+/8=")
    }
}

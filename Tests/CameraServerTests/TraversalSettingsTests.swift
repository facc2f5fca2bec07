import NIOCore
import NIOPosix
import Testing
@testable import CameraServer

/// Issue 19: STUN and TURN servers as saved settings and settings-page fields; the TURN password and
/// shared secret are kept in config.json and never shown by the API.
@Suite struct TraversalSettingsTests {
    @Test func turnServerSpellings() throws {
        #expect(try TURNServerSpelling.parse("turn:turn.example.org:3478?transport=udp") == .init(host: "turn.example.org", port: 3478))
        #expect(try TURNServerSpelling.parse("turn:192.0.2.1") == .init(host: "192.0.2.1", port: 3478))
        #expect(try TURNServerSpelling.parse("turn:[2001:db8::1]:5349") == .init(host: "2001:db8::1", port: 5349))
        #expect(try TURNServerSpelling.parse("TURN:relay.lan:80") == .init(host: "relay.lan", port: 80))
        // Issue 19: TCP and TLS to the server (the relay toward peers stays UDP).
        #expect(try TURNServerSpelling.parse("turn:a:3478?transport=tcp") == .init(host: "a", port: 3478, transport: .tcp))
        #expect(try TURNServerSpelling.parse("turns:turn.example.org:443") == .init(host: "turn.example.org", port: 443, transport: .tls))
        #expect(try TURNServerSpelling.parse("turns:turn.example.org") == .init(host: "turn.example.org", port: 5349, transport: .tls))
        #expect(try TURNServerSpelling.parse("TURNS:t.example?transport=tcp") == .init(host: "t.example", port: 5349, transport: .tls))
        #expect(try TURNServerSpelling.parse("turn:a?transport=TCP").transport == .tcp)
        #expect(throws: TURNServerSpelling.Problem.unsupported("turns:a?transport=udp")) {
            try TURNServerSpelling.parse("turns:a?transport=udp")
        }
        for bad in ["turn.example.org:3478", "turn:", "turn:a:0", "turn:a:99999", "turn:a:b:c", "turn:user@host", "turn:a?x=y"] {
            #expect(throws: TURNServerSpelling.Problem.self) { try TURNServerSpelling.parse(bad) }
        }
    }

    @Test func validationNamesTheField() throws {
        var settings = CameraSettings()
        settings.traversal.stunServers = ["stun.example.org:3478", "nonsense"]
        settings.traversal.turnServer = "turn:relay.example.org"
        #expect(settings.validationErrors().map(\.field) == ["stun", "turnPassword"])
        settings.traversal.stunServers = []
        settings.traversal.turnPassword = "pw"
        #expect(settings.validationErrors().map(\.field) == ["turnUser"])
        settings.traversal.turnUser = "cam"
        #expect(settings.validationErrors().isEmpty)
        settings.traversal.turnPassword = ""
        settings.traversal.turnSecret = "s"   // a shared secret needs no user
        settings.traversal.turnUser = ""
        #expect(settings.validationErrors().isEmpty)
        settings.traversal.turnServer = "turns:relay.example.org:443"
        #expect(settings.validationErrors().isEmpty)
        settings.traversal.turnServer = "turns:relay.example.org:443?transport=udp"
        #expect(settings.validationErrors().map(\.field) == ["turn"])
    }

    /// The file keeps the secrets (mode 0600, the state directory's); GET /api/config says only
    /// whether they are set; a PUT with "" (the page's empty field) keeps them, null removes them.
    @Test func secretsAreSavedButNeverShown() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let directory = TemporaryDirectory()
        let controller = SettingsController(store: ConfigStore(directory: directory.path, defaults: CameraSettings()),
                                            effective: CameraSettings(), loop: loop) { _, _ in loop.makeSucceededFuture(nil) }
        func put(_ text: String) throws -> SettingsController.UpdateResult {
            try loop.submit { controller.update(with: try JSONValue(parsing: text)) }.wait().wait()
        }
        guard case let .success(shown) = try put(#"{"stun": "192.0.2.1:3478 stun.example.org:19302", "turn": "turn:192.0.2.1:3478", "turnUser": "cam", "turnPassword": "hunter2-long", "turnSecret": "north-secret"}"#)
        else { Issue.record("not saved"); return }
        #expect(!shown.contains("hunter2-long") && !shown.contains("north-secret"))
        #expect(shown.contains(#""turnPasswordSet":true"#) && shown.contains(#""turnSecretSet":true"#))
        #expect(shown.contains(#""stun":"192.0.2.1:3478 stun.example.org:19302""#))
        let saved = try #require(directory.read("config.json"))
        #expect(saved.contains("hunter2-long") && saved.contains("north-secret"))
        let reloaded = ConfigStore(directory: directory.path, defaults: CameraSettings()).settings.traversal
        #expect(reloaded.stunServers == ["192.0.2.1:3478", "stun.example.org:19302"] && reloaded.turnPassword == "hunter2-long")
        // What GET showed, sent back with the empty password fields the page sends: nothing lost.
        guard case .success = try put(#"{"turnUser": "cam", "turnPassword": "", "turnSecret": "", "turnPasswordSet": true, "turnSecretSet": true}"#)
        else { Issue.record("round trip refused"); return }
        #expect(try loop.submit { controller.current.traversal }.wait() == reloaded)
        guard case let .success(cleared) = try put(#"{"turnSecret": null}"#) else { Issue.record("not cleared"); return }
        #expect(cleared.contains(#""turnSecretSet":false"#) && cleared.contains(#""turnPasswordSet":true"#))
        #expect(try loop.submit { controller.current.traversal.turnSecret }.wait() == "")
        guard case .invalid = try put(#"{"turnPassword": 5}"#) else { Issue.record("a number taken as a password"); return }
    }

    /// `--turn*` and `--stun` win over the saved ones for the run.
    @Test func commandLineOverridesTheSavedServers() {
        var saved = CameraSettings()
        saved.traversal.stunServers = ["192.0.2.1:3478"]
        saved.traversal.turnServer = "turn:192.0.2.1"
        saved.traversal.turnUser = "saved"
        saved.traversal.turnPassword = "saved-password"
        var overrides = SettingsOverrides()
        overrides.turnServer = "turn:198.51.100.1:3478"
        overrides.turnSecret = "secret"
        let effective = overrides.applied(to: saved).traversal
        #expect(effective.stunServers == ["192.0.2.1:3478"] && effective.turnServer == "turn:198.51.100.1:3478")
        #expect(effective.turnUser == "saved" && effective.turnSecret == "secret")
    }
}

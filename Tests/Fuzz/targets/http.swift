import Glibc
import NIOHTTP1
import RTCBase

// rtcam's own handling of an HTTP request, after NIOHTTP1's decoder (llhttp, whose limits
// HTTPConnectionGuard sets) and before any camera state changes: RequestFront (RequestPolicy's Host,
// Origin and HTTPS-only checks, the route table, the session cookie, `Authorization: Bearer`,
// `?token=`, the JSON and SDP bodies), then what CameraRouter does with the decoded bodies that needs
// no camera: settings applied and validated (SettingsController), token names and new passwords
// checked, the query's integers (OutputEndpoints).
//
// Input: a raw HTTP/1.1 request (request line, header lines, blank line, body), decoded here the way
// llhttp accepts one (a token method, a URI without controls or spaces, header values without
// controls but tab); what llhttp would refuse is skipped. An optional first byte below 0x20 is a set
// of flags: 1 the request came over TLS, 2 HTTPS is on (port 8443), 4 no password yet (viewing
// open). "@SESSION@" in the input becomes the owner's live session cookie value and "@TOKEN@" a
// live viewing token, so seeds reach the owner's endpoints. State (the password, the token file)
// is made once in a temporary directory, removed once loaded; nothing of the real daemon's is touched.
//
// Checked besides crashes: no response header carries CR, LF or NUL; the owner's endpoints are
// reached only with the live cookie; a state-changing request with a foreign Origin never gets past
// the policy (but WHEP with a valid token); /settings and /api/* never proceed on plain HTTP while
// HTTPS is on; a locked camera never admits an anonymous WHEP viewer.

struct Camera {
    let front: RequestFront
    let locked: Bool
    let cookie: String?
}

let start = MonotonicTime(seconds: 1_000)
let now = start + .seconds(1)

func makeDirectory() -> String {
    var template = Array("/tmp/rtcam-fuzz-http-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed") }
    return String(cString: made)
}

let directory = makeDirectory()
let tokens = ViewingTokens(stateDirectory: directory)
let tokenValue = try! tokens.create(name: "fuzz player").value
/// With a password (viewing locked) and its owner's session; without one (viewing open).
let withPassword: AccessControl = {
    let access = AccessControl(stateDirectory: directory + "/owner", passwordIterations: 1_000)
    try? StateFiles.ensureDirectory(directory + "/owner")
    return access
}()
let ownerCookie: String = {
    let code = withPassword.prepareSetupCode()!.code
    return try! withPassword.setInitialPassword("correct horse battery", setupCode: code, address: "fuzz", now: start).cookie
}()
let withoutPassword: AccessControl = {
    try? StateFiles.ensureDirectory(directory + "/open")
    return AccessControl(stateDirectory: directory + "/open", passwordIterations: 1_000)
}()

func camera(httpsOn: Bool, open: Bool) -> Camera {
    let policy = RequestPolicy(hostName: "rtcam.example", extraNames: ["camera.lan"], httpsPort: httpsOn ? 8443 : nil)
    let access = open ? withoutPassword : withPassword
    return Camera(front: RequestFront(policy: policy, access: access, tokens: tokens), locked: !open,
                  cookie: open ? nil : ownerCookie)
}

/// The four cameras; once they exist the state directory is read no more and is removed (a crash or
/// an interrupted run leaves nothing behind).
let cameras: [Camera] = {
    let made = [camera(httpsOn: false, open: false), camera(httpsOn: true, open: false),
                camera(httpsOn: false, open: true), camera(httpsOn: true, open: true)]
    precondition(!tokenValue.isEmpty)
    _ = system("rm -rf '\(directory)'")
    return made
}()

/// The input with "@SESSION@" and "@TOKEN@" replaced by the live values.
func substituted(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
    let marks: [([UInt8], [UInt8])] = [(Array("@SESSION@".utf8), Array(ownerCookie.utf8)),
                                       (Array("@TOKEN@".utf8), Array(tokenValue.utf8))]
    var result: [UInt8] = []
    result.reserveCapacity(bytes.count + 64)
    var index = bytes.startIndex
    outer: while index < bytes.endIndex {
        if bytes[index] == UInt8(ascii: "@") {
            for (mark, value) in marks where bytes[index...].starts(with: mark) {
                result += value
                index += mark.count
                continue outer
            }
        }
        result.append(bytes[index])
        index += 1
    }
    return result
}

func isTokenCharacter(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    default:
        return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
    }
}

/// One line (without its CR LF or LF) from `offset`; nil at the end of the input.
func line(_ bytes: [UInt8], from offset: inout Int) -> ArraySlice<UInt8>? {
    guard offset < bytes.count else { return nil }
    let newline = bytes[offset...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
    var end = newline
    if end > offset, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
    defer { offset = newline + 1 }
    return bytes[offset ..< end]
}

/// The request llhttp would hand NIOHTTP1's HTTPRequestHead for these bytes, or nil if it would refuse them.
func decode(_ bytes: [UInt8], isSecureTransport: Bool) -> HTTPRequest? {
    var offset = 0
    guard let requestLine = line(bytes, from: &offset) else { return nil }
    let parts = requestLine.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
    guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy(isTokenCharacter),
          !parts[1].isEmpty, parts[1].allSatisfy({ $0 > 0x20 && $0 != 0x7F }),
          parts[2].elementsEqual("HTTP/1.1".utf8) || parts[2].elementsEqual("HTTP/1.0".utf8) else { return nil }
    let method = HTTPMethod(rawValue: String(decoding: parts[0], as: UTF8.self))
    var headers = HTTPHeaders()
    while let header = line(bytes, from: &offset) {
        if header.isEmpty { break }
        guard let colon = header.firstIndex(of: UInt8(ascii: ":")), colon > header.startIndex,
              header[..<colon].allSatisfy(isTokenCharacter) else { return nil }
        let value = header[(colon + 1)...]
        guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else { return nil }
        headers.add(name: String(decoding: header[..<colon], as: UTF8.self),
                    value: String(decoding: value, as: UTF8.self).trimmingSpaces)
    }
    let (path, query) = HTTPRequest.split(uri: String(decoding: parts[1], as: UTF8.self))
    return HTTPRequest(method: method, path: path, query: query, headers: headers,
                       body: offset < bytes.count ? Array(bytes[offset...]) : [], isSecureTransport: isSecureTransport)
}

func contains(_ text: [UInt8], _ part: [UInt8]) -> Bool {
    guard part.count <= text.count else { return false }
    return (0 ... text.count - part.count).contains { text[$0 ..< $0 + part.count].elementsEqual(part) }
}

func check(_ response: HTTPResponse) {
    for (name, value) in response.headers {
        let forbidden: (UInt8) -> Bool = { byte in byte == 0x0D || byte == 0x0A || byte == 0 }
        precondition(!name.utf8.contains(where: forbidden) && !value.utf8.contains(where: forbidden),
                     "a response header carries CR, LF or NUL: \(name)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let raw = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    var flags: UInt8 = 0
    var input = raw[...]
    if let first = input.first, first < 0x20, first != 0x0D, first != 0x0A {
        flags = first
        input = input.dropFirst()
    }
    let isSecure = flags & 1 != 0
    let camera = cameras[Int(flags >> 1) & 3]
    guard let request = decode(substituted(input), isSecureTransport: isSecure) else { return 0 }

    let cookies = request.headers["cookie"]
    let hasOwnerCookie = camera.cookie.map { cookie in cookies.contains { contains(Array($0.utf8), Array(cookie.utf8)) } } ?? false
    let decision = camera.front.decide(request, servesOutputs: true, viewingIsLocked: camera.locked, now: now)
    if case let .answer(response) = decision {
        check(response)
        return 0
    }
    // Past RequestPolicy: its promises.
    if RequestPolicy.changesState(request.method), let origin = request.headers.first(name: "origin"),
       !(RequestPolicy.isWHEP(request.path) && camera.front.tokens.tokenID(authorizationHeader: request.headers.first(name: "authorization")) != nil) {
        let scheme = isSecure ? "https://" : "http://"
        precondition(origin.trimmingSpaces.lowercased().hasPrefix(scheme), "a foreign Origin got past the policy: \(origin)")
    }
    if camera.front.policy.httpsPort != nil, !isSecure {
        precondition(!RequestPolicy.needsHTTPS(request.path), "an HTTPS-only path proceeded on plain HTTP: \(request.path)")
    }
    switch decision {
    case .answer:
        break
    case .outputs:
        _ = camera.front.mayView(request, viewingIsLocked: camera.locked, now: now)
        _ = QueryString.integer(named: "width", in: request.query)
        _ = QueryString.integer(named: "fps", in: request.query)
    case let .sessionState(authenticated):
        precondition(!authenticated || hasOwnerCookie, "authenticated without the owner's cookie")
    case let .createToken(name):
        precondition(hasOwnerCookie, "a token made without the owner's cookie")
        _ = try? ViewingTokens.checkedName(name)
    case let .updateConfig(body):
        precondition(hasOwnerCookie, "settings changed without the owner's cookie")
        // What SettingsController.update does before it applies anything.
        if let proposed = try? CameraSettings().applying(body) {
            if proposed.validationErrors().isEmpty { _ = proposed.json(revealingSecrets: false) }
        }
    case .listTokens, .revokeToken, .status, .devices, .readConfig, .certificate:
        precondition(hasOwnerCookie, "an owner's endpoint reached without the owner's cookie: \(request.path)")
    case let .password(body, _):
        // The fields CameraRouter reads, and the strength check of a new one.
        for field in ["password", "setupCode", "currentPassword", "newPassword"] {
            if let text = body[field]?.stringValue { _ = try? AccessControl.check(newPassword: text) }
        }
        _ = body["viewingRequiresPassword"]?.boolValue
    case let .createSession(offer, credential):
        precondition(!offer.isEmpty)
        precondition(!(camera.locked && credential == .none), "a locked camera admitted an anonymous viewer")
        if case .session = credential { precondition(hasOwnerCookie, "a viewer admitted as the owner without the cookie") }
    case .viewerPage, .settingsPage, .logout, .deleteSession, .patchSession, .talk:
        break
    }
    return 0
}

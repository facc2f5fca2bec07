import NIOHTTP1
import SystemSupport

/// The talk floor over HTTP (issue 17): `POST /whep/{id}/talk` claims it for the viewer of that
/// WHEP session (200, or 409 "someone is talking"), `DELETE` gives it back. The session's URL is
/// the viewer's own capability (only its page knows it); "only the owner may talk" also needs the
/// owner's login cookie. The page calls it when Talk is pressed and released; the floor also goes
/// back by itself 5 s after the talker's last packet, and when the session ends.
enum TalkRoute {
    static func respond(to request: HTTPRequest, talkback: TalkbackController?, hub: StreamHub, isOwner: Bool) -> HTTPResponse {
        let id = String(request.path.dropFirst("/whep/".count).dropLast(RequestFront.talkSuffix.count))
        guard !id.isEmpty, !id.contains("/"), hub.sessionExists(id: id) else {
            return .json(.notFound, errorJSON("no WHEP session \(id.prefix(64))"))
        }
        guard let talkback else { return .json(.conflict, errorJSON("this camera has no speaker")) }
        switch request.method {
        case .POST:
            if talkback.whoMayTalk == .owner, !isOwner {
                return .json(.forbidden, errorJSON("only the camera's owner may talk: log in on the settings page"))
            }
            switch talkback.claim(viewer: id, now: MonotonicClock.now()) {
            case .granted:
                return .json(.ok, #"{"talking":true}"#)
            case .busy:
                return .json(.conflict, #"{"error":"someone is talking","busy":true}"#)
            case .noSpeaker:
                return .json(.conflict, errorJSON("this camera has no speaker"))
            }
        case .DELETE:
            talkback.release(viewer: id)
            return .json(.ok, #"{"talking":false}"#)
        default:
            return .json(.methodNotAllowed, errorJSON("POST to talk, DELETE to stop"), headers: [("Allow", "POST, DELETE")])
        }
    }
}

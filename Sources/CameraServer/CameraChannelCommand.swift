/// A command on the "rtcam" data channel (README "Data channels"), parsed from the page's JSON text:
/// a pure value, so every malformed input maps to one clear error (tested with seeded random input
/// in DataChannelHubTests). The hub acts on it (StreamHub+DataChannels.swift).
struct CameraChannelCommand: Equatable {
    enum Action: Equatable {
        case status
        case keyframe
        case setBitrate(kbps: Int)
        case listControls
        case setControl(id: UInt32, value: Int64)
    }

    /// The request's `id`, repeated in the answer: a number or a string, else none.
    enum RequestID: Equatable {
        case number(Int)
        case text(String)
    }

    struct Failure: Error, Equatable {
        var id: RequestID?
        var message: String
    }

    /// The largest command taken (a command is a small JSON object).
    static let maximumBytes = 4096

    var id: RequestID?
    var action: Action

    init(id: RequestID?, action: Action) {
        self.id = id
        self.action = action
    }

    init(parsing message: String) throws(Failure) {
        guard message.utf8.count <= Self.maximumBytes else {
            throw Failure(id: nil, message: "commands are JSON text of at most \(Self.maximumBytes) bytes")
        }
        let parsed: JSONValue
        do { parsed = try JSONValue(parsing: message) } catch {
            throw Failure(id: nil, message: "\(error)")
        }
        guard case .object = parsed else { throw Failure(id: nil, message: "a command is a JSON object") }
        switch parsed["id"] {
        case .number?:
            guard let integer = parsed["id"]?.intValue else { throw Failure(id: nil, message: "\"id\" must be an integer or a string") }
            id = .number(integer)
        case let .string(text)?:
            guard text.utf8.count <= 64 else { throw Failure(id: nil, message: "\"id\" is at most 64 bytes") }
            id = .text(text)
        case nil, .null?:
            id = nil
        default:
            throw Failure(id: nil, message: "\"id\" must be an integer or a string")
        }
        let requestID = id
        guard let type = parsed["type"]?.stringValue else {
            throw Failure(id: requestID, message: "a command is an object with a \"type\"")
        }
        switch type {
        case "status": action = .status
        case "keyframe": action = .keyframe
        case "listControls": action = .listControls
        case "setBitrate":
            guard let kbps = parsed["kbps"]?.intValue else {
                throw Failure(id: requestID, message: "setBitrate needs \"kbps\", an integer")
            }
            action = .setBitrate(kbps: kbps)
        case "setControl":
            guard let control = parsed["control"]?.intValue, let controlID = UInt32(exactly: control),
                  let value = parsed["value"]?.intValue else {
                throw Failure(id: requestID, message: "setControl needs \"control\" (an id from listControls) and \"value\", integers")
            }
            action = .setControl(id: controlID, value: Int64(value))
        default:
            throw Failure(id: requestID, message: "unknown command type \"\(type.utf8.count <= 40 ? type : String(type.prefix(40)) + "…")\"")
        }
    }
}

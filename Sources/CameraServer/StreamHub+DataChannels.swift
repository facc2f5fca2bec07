import DataChannel
import NIOCore
import RTCBase
import SystemSupport
import WebRTCSession

// What rtcam does with data channels (issue 18; README "Data channels"). A channel labelled "rtcam"
// gets the camera's status once a second and takes JSON commands; any other channel echoes what it
// receives (for tests) and is closed by a stream reset when the peer closes it. Everything here runs
// under the hub's lock and only queues: a camera control is set on the daemon's thread pool by the
// CameraChannelSource, whose answer comes back through `dataChannelReply`.

/// The camera side of the "rtcam" channel: status figures, and the commands. Implemented by the
/// daemon (CameraChannelControls); a recording double in tests.
protocol CameraChannelSource: AnyObject, Sendable {
    /// Frames per second and kb/s of the running video encoder, and its target bitrate. Cheap: read
    /// under the hub's lock.
    func mediaStatus() -> (framesPerSecond: Double, bitrateKbps: Double, targetBitrateKbps: Int)
    func requestKeyframe()
    /// A new encoder target (the caller checked that the viewer is the owner). Returns the value set,
    /// or why not.
    func setBitrate(kbps: Int) -> Result<Int, CameraChannelError>
    /// The camera's controls as a JSON array; `completion` runs later on another thread, never
    /// before this returns (the caller holds the hub's lock).
    func listControls(completion: @escaping @Sendable (Result<String, CameraChannelError>) -> Void)
    /// Sets a control; `completion` gets the value the driver then reports, later, on another thread.
    func setControl(id: UInt32, value: Int64, completion: @escaping @Sendable (Result<Int64, CameraChannelError>) -> Void)
}

struct CameraChannelError: Error, Equatable, Sendable {
    var message: String
    init(_ message: String) { self.message = message }
}

/// The hub's data channel state: which channels of which viewer are "rtcam" channels, and the one
/// status timer for all of them.
struct HubDataChannels {
    static let controlLabel = "rtcam"
    /// Channels a viewer may hold open, and "rtcam" channels among them: beyond, a new one is closed
    /// at once (a page needs one; a client opening thousands would cost a status each per second).
    static let maximumChannels = 16
    static let maximumControlChannels = 2
    /// Echoes wait in the session's SCTP queue for the peer's acknowledgements: a client that sends
    /// faster than it reads gets no more echoes while this much is queued (memory stays bounded).
    static let maximumQueuedEchoBytes = 2 * 1024 * 1024
    /// listControls / setControl requests of one viewer being answered on the worker thread at once.
    static let maximumControlRequestsInFlight = 4
    var source: CameraChannelSource?
    var controlChannels: [String: Set<UInt16>] = [:]
    /// Every channel each viewer holds that the hub took (the ones closed at once are not here).
    var acceptedChannels: [String: Set<UInt16>] = [:]
    var statusTask: RepeatedTask?
    /// Talkback (issue 17) reports here once it exists; "idle" until then.
    var talkState = "idle"
    var statusInterval: TimeAmount = .seconds(1)
    /// Control requests of each viewer not answered yet (see `maximumControlRequestsInFlight`).
    var controlRequestsInFlight: [String: Int] = [:]
    /// Echoes not sent because the viewer's queue was full.
    var echoesDropped = 0
}

extension StreamHub {
    /// The daemon's camera side of the "rtcam" channel (set once, before viewers come).
    func setCameraChannelSource(_ source: CameraChannelSource) {
        lock.withLock { dataChannels.source = source }
    }

    /// What the status says of talkback (issue 17: "idle" until someone talks; its owner sets it).
    func setTalkState(_ state: String) {
        lock.withLock { dataChannels.talkState = state }
    }

    /// A data channel event of a viewer's session (under the lock, from `handle(_:of:)`).
    func dataChannelEvent(_ event: DataChannelEvent, of id: String) {
        guard let viewer = viewers[id] else { return }
        let now = MonotonicClock.now()
        switch event {
        case .connected:
            logger.debug("viewer \(id): SCTP association up")
        case let .opened(info):
            logger.info("viewer \(id): data channel \(info.id) \"\(info.label)\" opened")
            let controlChannels = dataChannels.controlChannels[id]?.count ?? 0
            if dataChannels.acceptedChannels[id, default: []].count >= HubDataChannels.maximumChannels
                || (info.label == HubDataChannels.controlLabel && controlChannels >= HubDataChannels.maximumControlChannels) {
                logger.notice("viewer \(id): data channel \(info.id) closed at once: too many channels")
                viewer.session.closeDataChannel(info.id, now: now)
                return
            }
            dataChannels.acceptedChannels[id, default: []].insert(info.id)
            if info.label == HubDataChannels.controlLabel {
                dataChannels.controlChannels[id, default: []].insert(info.id)
                startStatusTimerIfNeeded()
                sendStatus(to: viewer, channel: info.id, now: now)
            }
        case .acknowledged:
            break
        case let .message(channel, message):
            if dataChannels.controlChannels[id]?.contains(channel) == true {
                command(message, from: viewer, channel: channel, now: now)
            } else {
                // Any other channel echoes (what tests and tools use to check the path).
                guard viewer.session.dataChannelBufferedAmount < HubDataChannels.maximumQueuedEchoBytes else {
                    dataChannels.echoesDropped += 1
                    return
                }
                try? viewer.session.sendDataChannelMessage(message, on: channel, now: now)
            }
        case let .closed(channel):
            logger.info("viewer \(id): data channel \(channel) closed")
            dataChannels.controlChannels[id]?.remove(channel)
            if dataChannels.controlChannels[id]?.isEmpty == true { dataChannels.controlChannels[id] = nil }
            dataChannels.acceptedChannels[id]?.remove(channel)
            stopStatusTimerIfUnused()
        case let .disconnected(reason):
            logger.info("viewer \(id): SCTP association ended (\(reason))")
            dataChannels.controlChannels[id] = nil
            dataChannels.acceptedChannels[id] = nil
            stopStatusTimerIfUnused()
        }
    }

    /// A viewer left (under the lock).
    func dataChannelsViewerLeft(_ id: String) {
        dataChannels.acceptedChannels[id] = nil
        guard dataChannels.controlChannels.removeValue(forKey: id) != nil else { return }
        stopStatusTimerIfUnused()
    }

    /// An answer computed off the lock (a camera control): sent if the viewer and channel are still there.
    func dataChannelReply(_ text: String, viewer id: String, channel: UInt16) {
        lock.withLock {
            if let pending = dataChannels.controlRequestsInFlight[id] {
                dataChannels.controlRequestsInFlight[id] = pending > 1 ? pending - 1 : nil
            }
            guard let viewer = viewers[id], dataChannels.controlChannels[id]?.contains(channel) == true else { return }
            try? viewer.session.sendDataChannelMessage(.text(text), on: channel, now: MonotonicClock.now())
            takeOutputs(of: id)
        }
    }

    // MARK: - Status

    private func startStatusTimerIfNeeded() {
        guard dataChannels.statusTask == nil else { return }
        let interval = dataChannels.statusInterval
        dataChannels.statusTask = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in
            self?.pushStatus()
        }
    }

    private func stopStatusTimerIfUnused() {
        guard dataChannels.controlChannels.isEmpty, let task = dataChannels.statusTask else { return }
        task.cancel()
        dataChannels.statusTask = nil
    }

    private func pushStatus() {
        lock.withLock {
            let now = MonotonicClock.now()
            for (id, channels) in dataChannels.controlChannels {
                guard let viewer = viewers[id] else { continue }
                for channel in channels.sorted() { sendStatus(to: viewer, channel: channel, now: now) }
                takeOutputs(of: id)
            }
        }
    }

    /// "you" (this viewer holds the talk floor), "talking" (someone else does), "idle", or what
    /// `setTalkState` said when the daemon has no talkback. Under the hub lock; the hub takes the
    /// talkback controller's lock after its own, as for the talker's packets.
    private func talkState(of viewer: String, now: MonotonicTime) -> String {
        guard let talkback else { return dataChannels.talkState }
        guard let holder = talkback.talker(now: now) else { return "idle" }
        return holder == viewer ? "you" : "talking"
    }

    private func sendStatus(to viewer: Viewer, channel: UInt16, now: MonotonicTime) {
        var json = JSONWriter()
        json.beginObject()
        json.field("type", "status")
        let media = dataChannels.source?.mediaStatus()
        json.field("fps", media?.framesPerSecond ?? 0)
        json.field("bitrateKbps", media?.bitrateKbps ?? 0)
        json.field("targetBitrateKbps", media?.targetBitrateKbps ?? 0)
        json.field("viewers", viewers.count)
        json.field("talk", talkState(of: viewer.id, now: now))
        json.field("owner", viewer.credential.isOwner)
        json.endObject()
        // A channel whose buffer is still full (a stalled page) skips a status rather than queue them.
        guard viewer.session.dataChannelBufferedAmount(channel) < 64 * 1024 else { return }
        try? viewer.session.sendDataChannelMessage(.text(json.text), on: channel, now: now)
    }

    // MARK: - Commands

    private func command(_ message: DataChannelMessage, from viewer: Viewer, channel: UInt16, now: MonotonicTime) {
        // A client that sends commands and never reads its answers gets none while its queue is full.
        let reply: (String?) -> Void = { text in
            guard let text, viewer.session.dataChannelBufferedAmount < HubDataChannels.maximumQueuedEchoBytes else { return }
            try? viewer.session.sendDataChannelMessage(.text(text), on: channel, now: now)
        }
        let command: CameraChannelCommand
        do {
            guard case let .text(text) = message else {
                throw CameraChannelCommand.Failure(id: nil, message: "commands are JSON text, not binary")
            }
            command = try CameraChannelCommand(parsing: text)
        } catch let failure as CameraChannelCommand.Failure {
            reply(Self.errorJSON(id: failure.id, failure.message))
            return
        } catch {
            return
        }
        let requestID = command.id
        switch command.action {
        case .status:
            sendStatus(to: viewer, channel: channel, now: now)
        case .keyframe:
            dataChannels.source?.requestKeyframe()
            reply(Self.okJSON(id: requestID, type: "keyframe"))
        case let .setBitrate(kbps):
            guard viewer.credential.isOwner else {
                reply(Self.errorJSON(id: requestID, "only the owner (logged in at /settings) may set the bitrate"))
                return
            }
            switch dataChannels.source?.setBitrate(kbps: kbps) ?? .failure(CameraChannelError("no encoder")) {
            case let .success(set):
                var json = Self.replyWriter(type: "bitrateSet", id: requestID)
                json.field("kbps", set)
                json.endObject()
                reply(json.text)
            case let .failure(error):
                reply(Self.errorJSON(id: requestID, error.message))
            }
        case .listControls where controlRequestsFull(of: viewer.id), .setControl where controlRequestsFull(of: viewer.id):
            // The daemon's one worker thread also runs logins and pipeline changes: a viewer waits
            // for its answers before it asks again.
            reply(Self.errorJSON(id: requestID, "busy: \(HubDataChannels.maximumControlRequestsInFlight) control requests are still being answered"))
        case .listControls:
            guard let source = dataChannels.source else {
                reply(Self.errorJSON(id: requestID, "no camera controls"))
                return
            }
            let viewerID = viewer.id
            dataChannels.controlRequestsInFlight[viewerID, default: 0] += 1
            source.listControls { [weak self] result in
                var json = Self.replyWriter(type: "controls", id: requestID)
                switch result {
                case let .success(array): json.key("controls"); json.raw(array)
                case let .failure(error): json.field("error", error.message)
                }
                json.endObject()
                self?.dataChannelReply(json.text, viewer: viewerID, channel: channel)
            }
        case let .setControl(controlID, value):
            guard let source = dataChannels.source else {
                reply(Self.errorJSON(id: requestID, "no camera controls"))
                return
            }
            let viewerID = viewer.id
            dataChannels.controlRequestsInFlight[viewerID, default: 0] += 1
            source.setControl(id: controlID, value: value) { [weak self] result in
                let text: String
                switch result {
                case let .success(now):
                    var json = Self.replyWriter(type: "controlSet", id: requestID)
                    json.field("control", Int(controlID))
                    json.field("value", Int(now))
                    json.endObject()
                    text = json.text
                case let .failure(error):
                    text = Self.errorJSON(id: requestID, error.message)
                }
                self?.dataChannelReply(text, viewer: viewerID, channel: channel)
            }
        }
    }

    private func controlRequestsFull(of id: String) -> Bool {
        dataChannels.controlRequestsInFlight[id, default: 0] >= HubDataChannels.maximumControlRequestsInFlight
    }

    static func replyWriter(type: String, id: CameraChannelCommand.RequestID?) -> JSONWriter {
        var json = JSONWriter()
        json.beginObject()
        json.field("type", type)
        switch id {   // the request's id comes back as given
        case let .number(number)?: json.field("id", number)
        case let .text(text)?: json.field("id", text)
        case nil: break
        }
        return json
    }

    static func okJSON(id: CameraChannelCommand.RequestID?, type: String) -> String {
        var json = replyWriter(type: type, id: id)
        json.field("ok", true)
        json.endObject()
        return json.text
    }

    static func errorJSON(id: CameraChannelCommand.RequestID?, _ message: String) -> String {
        var json = replyWriter(type: "error", id: id)
        json.field("error", message)
        json.endObject()
        return json.text
    }
}

extension ViewerCredential {
    /// The owner's login session admitted this viewer (not open viewing, not a viewing token).
    var isOwner: Bool { if case .session = self { return true } else { return false } }
}

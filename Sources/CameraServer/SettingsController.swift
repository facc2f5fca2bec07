import NIOCore

/// The settings as they are now: validated, applied live to the running daemon, then saved.
/// Applying can be slow (a new pipeline opens a camera, and a passthrough camera is probed for up to
/// 2 s), so it happens off the event loop; updates run one after another, each seeing the settings
/// the one before left.
final class SettingsController: @unchecked Sendable {  // confined to the hub's event loop
    enum UpdateResult {
        case success(String)
        case invalid([(field: String, message: String)])
        case saveFailed(String)
    }

    private let store: ConfigStore
    private let loop: any EventLoop
    private(set) var current: CameraSettings
    /// Applies new settings to the running daemon; its future (completed on `loop`, never failed)
    /// says why it could not (nothing changed then), or nil.
    private let apply: (_ old: CameraSettings, _ new: CameraSettings) -> EventLoopFuture<String?>
    /// The update in progress, if any: the next one starts when it has finished.
    private var previousUpdate: EventLoopFuture<Void>

    init(store: ConfigStore, effective: CameraSettings, loop: any EventLoop,
         apply: @escaping (_ old: CameraSettings, _ new: CameraSettings) -> EventLoopFuture<String?>) {
        self.store = store
        self.loop = loop
        current = effective
        self.apply = apply
        previousUpdate = loop.makeSucceededVoidFuture()
    }

    var loadProblem: String? { store.loadProblem }

    func configJSON() -> String {
        var json = JSONWriter()
        json.beginObject()
        json.key("settings")
        json.raw(current.json(revealingSecrets: false))
        json.field("problem", store.loadProblem)
        json.endObject()
        return json.text
    }

    /// Validates `body` against the current settings, applies and saves them. Call on `loop`.
    func update(with body: JSONValue) -> EventLoopFuture<UpdateResult> {
        loop.preconditionInEventLoop()
        let result = previousUpdate.flatMap { [self] in updateNow(with: body) }
        previousUpdate = result.map { _ in () }
        return result
    }

    private func updateNow(with body: JSONValue) -> EventLoopFuture<UpdateResult> {
        let proposed: CameraSettings
        do {
            proposed = try current.applying(body)
        } catch {
            return loop.makeSucceededFuture(.invalid([(error.field, error.message)]))
        }
        let errors = proposed.validationErrors()
        guard errors.isEmpty else { return loop.makeSucceededFuture(.invalid(errors)) }
        guard proposed != current else { return loop.makeSucceededFuture(commit(proposed)) }
        return apply(current, proposed).map { [self] reason in
            if let reason { return .invalid([("source", reason)]) }
            return commit(proposed)
        }
    }

    private func commit(_ proposed: CameraSettings) -> UpdateResult {
        current = proposed
        do {
            try store.save(proposed)
        } catch {
            // Applied but not saved: say so; the running daemon keeps the new settings until restart.
            return .saveFailed("applied, but could not be saved: \(error)")
        }
        return .success(configJSON())
    }
}

/// The settings as they are now: validated, applied live to the running daemon, then saved.
final class SettingsController: @unchecked Sendable {  // confined to the hub's event loop
    enum UpdateResult {
        case success(String)
        case invalid([(field: String, message: String)])
        case saveFailed(String)
    }

    private let store: ConfigStore
    private(set) var current: CameraSettings
    /// Applies new settings to the running daemon; returns why it could not (nothing changed then).
    private let apply: (_ old: CameraSettings, _ new: CameraSettings) -> String?

    init(store: ConfigStore, effective: CameraSettings,
         apply: @escaping (_ old: CameraSettings, _ new: CameraSettings) -> String?) {
        self.store = store
        current = effective
        self.apply = apply
    }

    var loadProblem: String? { store.loadProblem }

    func configJSON() -> String {
        var json = JSONWriter()
        json.beginObject()
        json.key("settings")
        json.raw(current.json())
        json.field("problem", store.loadProblem)
        json.endObject()
        return json.text
    }

    func update(with body: JSONValue) -> UpdateResult {
        let proposed: CameraSettings
        do {
            proposed = try current.applying(body)
        } catch {
            return .invalid([(error.field, error.message)])
        }
        let errors = proposed.validationErrors()
        guard errors.isEmpty else { return .invalid(errors) }
        if proposed != current {
            if let reason = apply(current, proposed) { return .invalid([("source", reason)]) }
        }
        let previous = current
        current = proposed
        do {
            try store.save(proposed)
        } catch {
            // Applied but not saved: say so; the running daemon keeps the new settings until restart.
            _ = previous
            return .saveFailed("applied, but could not be saved: \(error)")
        }
        return .success(configJSON())
    }
}

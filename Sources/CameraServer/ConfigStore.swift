/// The saved settings (`config.json` in the state directory). Saving is atomic (temporary file,
/// fsync, rename); a file that cannot be read or parsed leaves the daemon on its defaults, says why,
/// and is never overwritten: it is kept beside the new one as `config.json.corrupt`. While such a
/// problem stands, viewing is locked (CameraRouter.viewingIsLocked), never opened by the defaults.
final class ConfigStore: @unchecked Sendable {  // used on the hub's event loop only
    let path: String
    private(set) var settings: CameraSettings
    /// Why the saved file was not used, for the log and the settings page (nil: all well).
    private(set) var loadProblem: String?
    private var keepCorruptFileOnSave = false

    init(directory: String, defaults: CameraSettings) {
        path = directory + "/config.json"
        settings = defaults
        guard StateFiles.exists(path) else { return }
        guard let text = StateFiles.read(path) else {
            loadProblem = "\(path) could not be read; using the defaults"
            keepCorruptFileOnSave = true
            return
        }
        do {
            let parsed = try JSONValue(parsing: text)
            let loaded = try defaults.applying(parsed)
            if let problem = loaded.validationErrors().first {
                loadProblem = "\(path) has an invalid \(problem.field): \(problem.message); using the defaults"
                keepCorruptFileOnSave = true
                return
            }
            settings = loaded
        } catch let error as JSONValue.ParseError {
            loadProblem = "\(path) is corrupt (\(error)); using the defaults"
            keepCorruptFileOnSave = true
        } catch let error as CameraSettings.InvalidField {
            loadProblem = "\(path) has an invalid \(error.field): \(error.message); using the defaults"
            keepCorruptFileOnSave = true
        } catch {
            loadProblem = "\(path): \(error); using the defaults"
            keepCorruptFileOnSave = true
        }
    }

    func save(_ newSettings: CameraSettings) throws {
        if keepCorruptFileOnSave, StateFiles.exists(path) {
            try StateFiles.rename(path, to: path + ".corrupt")
        }
        try StateFiles.writeAtomically(path, contents: newSettings.json() + "\n", mode: 0o600)
        keepCorruptFileOnSave = false
        loadProblem = nil
        settings = newSettings
    }
}

import NIOCore
import NIOPosix
import V4L2

/// The daemon's side of the "rtcam" data channel (StreamHub+DataChannels.swift): status figures
/// and keyframes from the running pipeline, the bitrate of its encoder, and the V4L2 camera's
/// controls. The controls are read and set on the daemon's thread pool, on a file handle of their
/// own (V4L2ControlDevice), never under the hub's lock and never on the capture's handle.
final class CameraChannelControls: CameraChannelSource, @unchecked Sendable {
    private let media: MediaController
    private let threadPool: NIOThreadPool

    init(media: MediaController, threadPool: NIOThreadPool) {
        self.media = media
        self.threadPool = threadPool
    }

    func mediaStatus() -> (framesPerSecond: Double, bitrateKbps: Double, targetBitrateKbps: Int) {
        let pipeline = media.current
        let status = pipeline.status()
        return (status.framesPerSecond, status.bitrateKbps, pipeline.configuration.bitrateKbps)
    }

    func requestKeyframe() { media.requestKeyframe() }

    /// The running encoder's target, as the settings page's bitrate does (same bounds), without
    /// saving it: the next restart uses the saved settings.
    func setBitrate(kbps: Int) -> Result<Int, CameraChannelError> {
        guard (50...50_000).contains(kbps) else { return .failure(CameraChannelError("bitrate must be 50 to 50000 kbit/s")) }
        let pipeline = media.current
        var configuration = pipeline.configuration
        configuration.bitrateKbps = kbps
        pipeline.setBitrate(kbps: kbps)
        pipeline.updateConfiguration(configuration)
        return .success(kbps)
    }

    func listControls(completion: @escaping @Sendable (Result<String, CameraChannelError>) -> Void) {
        let path = media.current.cameraDevicePath
        threadPool.submit { _ in
            guard let path else { return completion(.success("[]")) }   // the test pattern has none
            do {
                completion(.success(Self.json(try V4L2ControlDevice(path: path).controls())))
            } catch {
                completion(.failure(CameraChannelError("\(path): \(error)")))
            }
        }
    }

    func setControl(id: UInt32, value: Int64, completion: @escaping @Sendable (Result<Int64, CameraChannelError>) -> Void) {
        let path = media.current.cameraDevicePath
        threadPool.submit { _ in
            guard let path else { return completion(.failure(CameraChannelError("no camera: the source has no controls"))) }
            do {
                let device = try V4L2ControlDevice(path: path)
                // Only what listControls offers may be set, and only within its range.
                guard let control = try device.controls().first(where: { $0.id == id }) else {
                    return completion(.failure(CameraChannelError("no control \(id) on \(path)")))
                }
                guard control.accepts(value) else {
                    return completion(.failure(CameraChannelError(
                        "\(control.name): \(value) is not a value it takes (\(control.minimum)...\(control.maximum), step \(control.step))")))
                }
                completion(.success(try device.setValue(value, of: id)))
            } catch {
                completion(.failure(CameraChannelError("\(path): \(error)")))
            }
        }
    }

    /// The controls as the channel sends them (README "Data channels").
    static func json(_ controls: [V4L2ControlInfo]) -> String {
        var json = JSONWriter()
        json.beginArray()
        for control in controls {
            json.beginObject()
            json.field("id", Int(control.id))
            json.field("name", control.name)
            json.field("type", control.kind.rawValue)
            json.field("min", Int(control.minimum))
            json.field("max", Int(control.maximum))
            json.field("step", Int(control.step))
            json.field("default", Int(control.defaultValue))
            if let value = control.value { json.field("value", Int(value)) }
            json.field("readOnly", control.readOnly)
            if !control.menu.isEmpty {
                json.key("menu")
                json.beginArray()
                for item in control.menu {
                    json.beginObject()
                    json.field("index", Int(item.index))
                    json.field("name", item.name)
                    json.endObject()
                }
                json.endArray()
            }
            json.endObject()
        }
        json.endArray()
        return json.text
    }
}

import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import CameraServer

/// PUT /api/config's engine: applying runs off the event loop (a future), updates queue behind one
/// another, a refused apply changes and saves nothing.
@Suite struct SettingsControllerTests {
    /// The apply step, held open until the test completes it.
    final class PendingApplies: @unchecked Sendable {
        private let lock = NIOLock()
        private var calls: [(old: CameraSettings, new: CameraSettings, promise: EventLoopPromise<String?>)] = []
        func add(_ old: CameraSettings, _ new: CameraSettings, _ promise: EventLoopPromise<String?>) {
            lock.withLock { calls.append((old, new, promise)) }
        }
        var count: Int { lock.withLock { calls.count } }
        func call(_ index: Int) -> (old: CameraSettings, new: CameraSettings, promise: EventLoopPromise<String?>) {
            lock.withLock { calls[index] }
        }
    }

    static func json(_ text: String) throws -> JSONValue { try JSONValue(parsing: text) }

    @Test("a second update waits for the first's apply and validates against what the first left; both are saved")
    func updatesRunOneAfterAnother() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let directory = TemporaryDirectory()
        let pending = PendingApplies()
        let controller = SettingsController(store: ConfigStore(directory: directory.path, defaults: CameraSettings()),
                                            effective: CameraSettings(), loop: loop) { old, new in
            let promise = loop.makePromise(of: String?.self)
            pending.add(old, new, promise)
            return promise.futureResult
        }
        let (first, second) = try loop.submit {
            (controller.update(with: try Self.json(#"{"bitrateKbps": 1500}"#)),
             controller.update(with: try Self.json(#"{"fps": 15}"#)))
        }.wait()
        #expect(pending.count == 1, "the second update has not started")
        pending.call(0).promise.succeed(nil)
        guard case .success = try first.wait() else { Issue.record("first update not applied"); return }
        try loop.submit {}.wait()
        #expect(pending.count == 2)
        #expect(pending.call(1).old.media.bitrateKbps == 1500, "validated against the first update's result")
        #expect(pending.call(1).new.media.framesPerSecond == 15)
        pending.call(1).promise.succeed(nil)
        guard case .success = try second.wait() else { Issue.record("second update not applied"); return }
        let current = try loop.submit { controller.current }.wait()
        #expect(current.media.bitrateKbps == 1500 && current.media.framesPerSecond == 15)
        let reloaded = ConfigStore(directory: directory.path, defaults: CameraSettings()).settings
        #expect(reloaded.media.bitrateKbps == 1500 && reloaded.media.framesPerSecond == 15)
    }

    @Test("an apply that fails (a camera that will not open) changes and saves nothing, and the next update runs")
    func refusedApplyKeepsEverything() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let directory = TemporaryDirectory()
        let controller = SettingsController(store: ConfigStore(directory: directory.path, defaults: CameraSettings()),
                                            effective: CameraSettings(), loop: loop) { _, new in
            loop.makeSucceededFuture(new.media.framesPerSecond == 15 ? "/dev/video9 does not open" : nil)
        }
        let refused = try loop.flatSubmit { controller.update(with: try! Self.json(#"{"fps": 15, "bitrateKbps": 900}"#)) }.wait()
        guard case let .invalid(errors) = refused else { Issue.record("expected a refusal, got \(refused)"); return }
        #expect(errors.map(\.field) == ["source"])
        #expect(errors.first?.message.contains("/dev/video9") == true)
        #expect(try loop.submit { controller.current }.wait() == CameraSettings())
        #expect(directory.read("config.json") == nil, "nothing saved")
        let next = try loop.flatSubmit { controller.update(with: try! Self.json(#"{"bitrateKbps": 900}"#)) }.wait()
        guard case .success = next else { Issue.record("the next update should apply"); return }
        #expect(try loop.submit { controller.current }.wait().media.bitrateKbps == 900)
    }
}

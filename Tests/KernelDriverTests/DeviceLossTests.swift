import Glibc
import RTCBase
import Testing
import V4L2

/// A platform driver's one device in sysfs (vivid.0, vicodec.0), unbound and bound again by hand.
struct PlatformDeviceSysfs {
    let driver: String
    let device: String
    /// The V4L2 node name that shows up once the device is bound, and what to call it in errors.
    let nodeName: String
    let nodeDescription: String

    var isBound: Bool { access("\(driver)/\(device)", F_OK) == 0 }

    func unbind() throws { try writeSysfs("\(driver)/unbind", device) }

    /// Binds the device again and waits (up to 3 s) for its node.
    @discardableResult
    func bind() throws -> String {
        if !isBound { try writeSysfs("\(driver)/bind", device) }
        let end = monotonicNow() + .seconds(3)
        while monotonicNow() < end {
            if let node = videoNode(named: nodeName), access(node, F_OK) == 0 { return node }
            sleepMilliseconds(20)
        }
        throw KernelDriverTestError("\(nodeDescription) did not come back within 3 s")
    }
}

extension PlatformDeviceSysfs {
    static let vivid = PlatformDeviceSysfs(driver: "/sys/bus/platform/drivers/vivid", device: "vivid.0",
                                           nodeName: NodeName.camera, nodeDescription: "vivid's capture node")
    static let vicodec = PlatformDeviceSysfs(driver: "/sys/bus/platform/drivers/vicodec", device: "vicodec.0",
                                             nodeName: NodeName.encoder, nodeDescription: "vicodec's encoder node")
}

/// Loading vivid as board/qemu-x86_64/init.sh does (its default parameters).
enum VividModule {
    static let load = ["/bin/modprobe", "vivid", "n_devs=1", "node_types=0x1", "num_inputs=2", "input_types=0xc"]
}

extension KernelDrivers {
    @Suite("device loss: vivid unbound while streaming")
    struct DeviceLoss {
        @Test("unbind: .deviceGone (typed), the held frame stays readable, reopen fails while gone; after bind, reopen streams again")
        func unbindWhileStreaming() throws {
            let path = try requireNode(NodeName.camera)
            let capture = V4L2Capture(configuration: V4L2CaptureConfiguration(
                path: path,
                request: .vividVGA,
                bufferCount: 4, exportDMABUF: true))
            try capture.start()
            defer {
                capture.stop()
                _ = try? PlatformDeviceSysfs.vivid.bind()  // whatever happened, leave vivid bound for the other suites
            }
            let before = try streamFrames(capture, for: .milliseconds(500))
            #expect(before.count >= 3)
            let held = try nextFrame(capture)
            let heldChecksum = held.data.reduce(0) { $0 &+ UInt64($1) }

            let unbindStarted = monotonicNow()
            try PlatformDeviceSysfs.vivid.unbind()
            let unbindTook = milliseconds(monotonicNow() - unbindStarted)
            #expect(!PlatformDeviceSysfs.vivid.isBound)

            // The next read reports the loss as the typed error the daemon reopens on.
            var lossError: V4L2Error?
            let end = monotonicNow() + .seconds(3)
            while lossError == nil, monotonicNow() < end {
                if let fd = capture.fileDescriptor { _ = waitFor(fd, events: Int16(POLLIN | POLLERR | POLLHUP), milliseconds: 100) }
                do {
                    if let frame = try capture.readFreshestFrame(now: monotonicNow()) { try capture.release(frame) }
                } catch {
                    lossError = error
                }
            }
            #expect(lossError == .deviceGone)
            #expect(capture.state == .deviceGone)
            #expect(capture.statistics.deviceLosses == 1)
            #expect(capture.fileDescriptor == nil)
            #expect(throws: V4L2Error.deviceGone) { _ = try capture.readFreshestFrame(now: monotonicNow()) }

            // The frame the consumer held is still mapped and unchanged; handing it back unmaps it.
            #expect(held.data.reduce(0) { $0 &+ UInt64($1) } == heldChecksum)
            try capture.release(held)
            #expect(capture.heldFrameCount == 0)

            // While the device is gone a reopen fails with a typed error (the node is gone).
            #expect(access(path, F_OK) != 0, "\(path) should disappear with the unbound device")
            #expect {
                try capture.reopen()
            } throws: { error in
                guard let error = error as? V4L2Error else { return false }
                if case let .open(failedPath, code) = error { return failedPath == path && code == ENOENT }
                return error == .deviceGone
            }

            // vivid comes back (the same node number: it is the lowest free one) and rtcam's reopen streams again.
            let returned = try PlatformDeviceSysfs.vivid.bind()
            #expect(returned == path)
            try capture.reopen()
            #expect(capture.state == .streaming)
            let after = try streamFrames(capture, for: .seconds(1))
            #expect(after.count >= 15, "\(after.count) frames in the second after the reopen")
            #expect(after.allSatisfy { $0.timestampSource == .driverMonotonic && $0.dmabufFDs.count == 1 })
            #expect(capture.statistics.reopens == 2)
            #expect(capture.statistics.deviceLosses == 1)
            print("vivid unbind: write took \(unbindTook) ms, loss seen as \(lossError.map { "\($0)" } ?? "nothing"); "
                  + "\(after.count) frames after rebind; \(capture.statistics)")
        }

        @Test("vivid's module: removal refused while streaming (the stream goes on); removed after stop, reopen fails typed; reloaded, reopen streams")
        func moduleRemoval() throws {
            let path = try requireNode(NodeName.camera)
            let capture = V4L2Capture(configuration: V4L2CaptureConfiguration(
                path: path,
                request: .vividVGA))
            try capture.start()
            defer {
                capture.stop()
                if access("/sys/module/vivid", F_OK) != 0 { _ = try? runProgram(VividModule.load) }
            }
            #expect(try streamFrames(capture, for: .milliseconds(300)).count >= 3)

            // An open node holds the module: the kernel refuses to remove it, and nothing breaks.
            #expect(try runProgram(["/bin/rmmod", "vivid"]) != 0)
            #expect(access("/sys/module/vivid", F_OK) == 0)
            #expect(try streamFrames(capture, for: .milliseconds(300)).count >= 3)
            #expect(capture.state == .streaming)

            capture.stop()
            #expect(try runProgram(["/bin/rmmod", "vivid"]) == 0, "rmmod vivid after the capture closed it")
            #expect(videoNode(named: NodeName.camera) == nil)
            #expect {
                try capture.reopen()
            } throws: { error in
                guard case let .open(failedPath, code) = error as? V4L2Error else { return false }
                return failedPath == path && code == ENOENT
            }

            #expect(try runProgram(VividModule.load) == 0)
            let end = monotonicNow() + .seconds(3)
            while videoNode(named: NodeName.camera) == nil, monotonicNow() < end { sleepMilliseconds(20) }
            #expect(videoNode(named: NodeName.camera) == path)
            try capture.reopen()
            let frames = try streamFrames(capture, for: .milliseconds(600))
            #expect(frames.count >= 8, "\(frames.count) frames after the module came back")
        }

        @Test("vicodec unbound while encoding: .deviceGone, every lent camera frame handed back, the camera streams on; after bind the encoder starts again")
        func encoderUnbind() throws {
            let chain = try EncodeChain(inputMemory: .dmabuf)
            defer { _ = try? PlatformDeviceSysfs.vicodec.bind() }
            try chain.run(for: .milliseconds(600))
            let encodedBefore = chain.outputs.count
            #expect(encodedBefore >= 2)

            try PlatformDeviceSysfs.vicodec.unbind()
            var lossError: V4L2Error?
            let end = monotonicNow() + .seconds(3)
            while lossError == nil, monotonicNow() < end {
                do { try chain.run(for: .milliseconds(100)) } catch let error as V4L2Error { lossError = error }
            }
            #expect(lossError == .deviceGone)
            #expect(chain.encoder.state == .deviceGone)
            #expect(chain.encoder.fileDescriptor == nil)
            // The encoder hands back what it held; the caller still owns the frame whose encode failed.
            for tag in chain.encoder.takeReleasedInputs() {
                if let frame = chain.held.removeValue(forKey: tag) { try chain.capture.release(frame) }
            }
            #expect(chain.held.count <= 1, "camera frames still lent to a gone encoder: \(chain.held.keys.sorted())")
            for frame in chain.held.values { try chain.capture.release(frame) }
            chain.held = [:]
            #expect(chain.capture.heldFrameCount == 0)
            #expect(throws: V4L2Error.deviceGone) { _ = try chain.encoder.encode(try nextFrameInput(chain.capture)) }

            // The camera is not affected.
            let frames = try streamFrames(chain.capture, for: .milliseconds(400))
            #expect(frames.count >= 4)

            // vicodec returns under the same node; the same encoder object starts again.
            let node = try PlatformDeviceSysfs.vicodec.bind()
            #expect(node == chain.encoder.configuration.path)
            try chain.encoder.start()
            let restartedAt = chain.outputs.count
            try chain.run(for: .milliseconds(600))
            #expect(chain.outputs.count - restartedAt >= 2, "\(chain.outputs.count - restartedAt) frames after the restart")
            #expect(chain.outputs[restartedAt...].first?.isKeyFrame == true)
            print("vicodec unbind: loss seen as \(lossError.map { "\($0)" } ?? "nothing"); \(encodedBefore) frames before, "
                  + "\(chain.outputs.count - restartedAt) after the restart")
        }
    }
}

/// The next camera frame as encoder input, the frame handed straight back (for calls expected to fail).
func nextFrameInput(_ capture: V4L2Capture) throws -> V4L2EncoderInput {
    let frame = try nextFrame(capture)
    defer { try? capture.release(frame) }
    return frame.encoderInput
}

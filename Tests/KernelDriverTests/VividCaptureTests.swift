import Glibc
import RTCBase
import Testing
import V4L2

extension KernelDrivers {
    @Suite("V4L2Capture on vivid")
    struct VividCapture {
        @Test("vivid and vicodec are found by name and described: formats, sizes, frame intervals, M2M queues")
        func discovery() throws {
            let camera = try V4L2Discovery.describe(path: try requireNode(NodeName.camera))
            #expect(camera.kind == .videoCapture)
            #expect(camera.capability.driver == "vivid")
            #expect(camera.capability.supportsStreaming)
            let offered = camera.formats.map(\.format.pixelFormat)
            for wanted in [V4L2PixelFormat.yuv420, .nv12, .yuyv] {
                #expect(offered.contains(wanted), "vivid offers \(offered.count) formats, not \(wanted)")
            }
            let yu12 = try #require(camera.formats.first { $0.format.pixelFormat == .yuv420 })
            func intervals(_ width: UInt32, _ height: UInt32) -> [V4L2FrameInterval] {
                yu12.sizes.first { $0.size == .discrete(width: width, height: height) }?.intervals ?? []
            }
            #expect(intervals(640, 480).contains(.discrete(V4L2Fraction(1, 25))))
            #expect(intervals(640, 480).contains(.discrete(V4L2Fraction(1, 10))))
            #expect(intervals(1280, 720).contains(.discrete(V4L2Fraction(2, 25))))
            #expect(!intervals(1280, 720).contains(.discrete(V4L2Fraction(1, 25))), "vivid's webcam caps 720p at 12.5 fps")

            let encoder = try V4L2Discovery.describe(path: try requireNode(NodeName.encoder))
            #expect(encoder.kind == .memoryToMemory)
            #expect(encoder.capability.driver == "vicodec")
            #expect(encoder.formats.map(\.format.pixelFormat).contains(.fwht))
            let rawInputs = encoder.inputFormats.map(\.format.pixelFormat)
            #expect(rawInputs.contains(.yuv420) && rawInputs.contains(.nv12))
        }

        struct RateCase: CustomTestStringConvertible, Sendable {
            var width: UInt32, height: UInt32, format: V4L2PixelFormat, askedFPS: UInt32
            var interval: V4L2Fraction
            var seconds: Int
            var testDescription: String { "\(width)x\(height) \(format) asking \(askedFPS) fps → \(interval)" }
        }

        @Test("MMAP capture: the format and rate negotiated, frames at that rate, sequence and monotonic timestamps in order",
              arguments: [
                  RateCase(width: 640, height: 480, format: .yuv420, askedFPS: 25, interval: V4L2Fraction(1, 25), seconds: 2),
                  RateCase(width: 640, height: 480, format: .nv12, askedFPS: 10, interval: V4L2Fraction(1, 10), seconds: 2),
                  // vivid's webcam has no 720p30: the driver picks its nearest, 12.5 fps.
                  RateCase(width: 1280, height: 720, format: .nv12, askedFPS: 30, interval: V4L2Fraction(2, 25), seconds: 2),
              ])
        func mmapCapture(_ rate: RateCase) throws {
            let capture = V4L2Capture(configuration: V4L2CaptureConfiguration(
                path: try requireNode(NodeName.camera),
                request: V4L2FormatRequest(width: rate.width, height: rate.height, preferredPixelFormats: [rate.format],
                                           framesPerSecond: rate.askedFPS),
                exportDMABUF: false))
            try capture.start()
            defer { capture.stop() }
            let negotiated = try #require(capture.negotiated)
            #expect(negotiated.format.pixelFormat == rate.format)
            #expect(negotiated.format.width == rate.width && negotiated.format.height == rate.height)
            #expect(negotiated.format.planes.first?.bytesPerLine == rate.width)
            let frameBytes = Int(rate.width * rate.height * 3 / 2)
            #expect(negotiated.timePerFrame == rate.interval)

            let expectedFPS = rate.interval.framesPerSecond
            let (frames, elapsed, discarded) = try streamSteadily(
                capture, for: .seconds(rate.seconds), maxGap: .milliseconds(Int64(3000 / expectedFPS) + 100))
            try #require(frames.count >= 3, "only \(frames.count) frames in \(elapsed) s")
            let first = frames[0], last = frames[frames.count - 1]

            // Every frame: whole, no DMABUF (not asked for), the driver's monotonic timestamp.
            #expect(frames.allSatisfy { $0.bytesUsed == frameBytes && $0.dmabufFDs.isEmpty })
            #expect(frames.allSatisfy { $0.timestampSource == .driverMonotonic })
            var ordered = true
            for (previous, next) in zip(frames, frames.dropFirst())
                where !(next.sequence > previous.sequence && next.captureTime > previous.captureTime) {
                ordered = false
            }
            #expect(ordered, "sequence numbers and timestamps must increase")
            // Timestamps are CLOCK_MONOTONIC and recent (TCG slack). vivid stamps the ideal end of
            // the frame (stream start + (sequence + 1) intervals, the sequence counted in jiffies)
            // and hands the buffer over at its start: a timestamp lies up to an interval after the
            // dequeue, two when TCG delays the guest's ticks.
            let ages = frames.map { milliseconds($0.readAt - $0.captureTime) }
            let interval = 1000.0 / expectedFPS
            #expect(ages.allSatisfy { $0 >= -2 * interval - 20 }, "a timestamp \(-(ages.min() ?? 0)) ms after its dequeue")
            #expect(ages.max() ?? 0 < interval + 250, "oldest frame \(ages.max() ?? 0) ms at dequeue")

            // The rate: the driver's timestamps space frames by the negotiated interval, and the
            // frames produced (delivered, replaced, or dropped by the driver) match the wall time.
            let span = Int(last.sequence - first.sequence)
            let measuredInterval = seconds(last.captureTime - first.captureTime) / Double(span)
            #expect(abs(measuredInterval * expectedFPS - 1) < 0.1,
                    "frames \(measuredInterval * 1000) ms apart, negotiated \(1000 / expectedFPS) ms")
            let produced = Double(span + 1)
            #expect(abs(produced - elapsed * expectedFPS) <= max(2, 0.15 * elapsed * expectedFPS),
                    "\(produced) frames produced in \(elapsed) s at \(expectedFPS) fps")
            // The reader keeps up (freshest-frame skips and driver drops only when TCG stalls the guest).
            #expect(Double(frames.count) >= 0.6 * produced, "delivered \(frames.count) of \(produced)")
            #expect(capture.statistics.corruptedFrames == 0)
            print("vivid \(rate.testDescription): \(frames.count) frames in \(elapsed) s (\(discarded) windows discarded), "
                  + "sequence \(first.sequence)…\(last.sequence), "
                  + "\(measuredInterval * 1000) ms apart, age ≤ \(ages.max() ?? 0) ms, \(capture.statistics)")
        }

        @Test("DMABUF export: one fd per buffer, each maps the very bytes of the frame's MMAP view")
        func dmabufExport() throws {
            let capture = V4L2Capture(configuration: V4L2CaptureConfiguration(
                path: try requireNode(NodeName.camera),
                request: .vividVGA,
                bufferCount: 4, exportDMABUF: true))
            try capture.start()
            defer { capture.stop() }
            #expect(!capture.statistics.dmabufExportFailed)
            var fdByBuffer: [Int: Int32] = [:]
            var inconsistent = 0
            var mismatched = 0
            var checked = 0
            let frames = try streamFrames(capture, for: .seconds(1)) { frame in
                guard frame.dmabufFDs.count == 1, let fd = frame.dmabufFDs.first else { return }
                if let known = fdByBuffer[frame.bufferIndex], known != fd { inconsistent += 1 }
                fdByBuffer[frame.bufferIndex] = fd
                let size = lseek(fd, 0, SEEK_END)
                #expect(size >= frame.planeLengths[0], "DMABUF of \(size) bytes for a \(frame.planeLengths[0]) byte buffer")
                guard let mapped = mmap(nil, frame.data.count, PROT_READ, MAP_SHARED, fd, 0),
                      mapped != UnsafeMutableRawPointer(bitPattern: -1) else {
                    Issue.record("mmap of the DMABUF failed: errno \(errno)")
                    return
                }
                defer { munmap(mapped, frame.data.count) }
                checked += 1
                if memcmp(mapped, frame.data.baseAddress!, frame.data.count) != 0 { mismatched += 1 }
            }
            #expect(frames.count >= 5)
            #expect(frames.allSatisfy { $0.dmabufFDs.count == 1 && $0.dmabufFDs[0] >= 0 })
            // One fd per buffer, for the whole session.
            #expect(inconsistent == 0)
            #expect(Set(fdByBuffer.values).count == fdByBuffer.count, "buffers share a DMABUF fd: \(fdByBuffer)")
            #expect(checked == frames.count)
            #expect(mismatched == 0, "\(mismatched) of \(checked) DMABUFs differ from their MMAP views")
        }

        @Test("freshest frame wins: after a 500 ms stall the newest ready frame is delivered, the stale ones requeued at once")
        func freshestAfterStall() throws {
            let capture = V4L2Capture(configuration: V4L2CaptureConfiguration(
                path: try requireNode(NodeName.camera),
                request: .vividVGA,
                bufferCount: 4, exportDMABUF: false))
            try capture.start()
            defer { capture.stop() }
            let warmUp = try streamFrames(capture, for: .milliseconds(400))
            let lastSeen = try #require(warmUp.last)
            let before = capture.statistics
            let buffers = capture.maximumHeldFrames + 2

            sleepMilliseconds(500)  // the consumer is late: every buffer fills, then the driver drops frames
            let stallEnded = monotonicNow()

            // All buffers are ready: the newest is delivered, the others go straight back. (V4L2 cannot
            // do better: the driver filled them in the stall's first 160 ms and then had none.)
            let stale = try nextFrame(capture)
            let after = capture.statistics
            #expect(after.framesSkippedStale - before.framesSkippedStale == buffers - 1,
                    "\(buffers) buffers were ready: \(buffers - 1) should be skipped (\(after))")
            #expect(stale.sequence >= lastSeen.sequence + UInt32(buffers),
                    "the newest of the \(buffers) filled during the stall: \(lastSeen.sequence) → \(stale.sequence)")
            #expect(stale.captureTime < stallEnded - .milliseconds(200))
            try capture.release(stale)
            // With the buffers back, the next frame is one captured after the stall: the frames the
            // driver had to drop meanwhile show as a sequence gap.
            let fresh = try nextFrame(capture)
            #expect(fresh.captureTime >= stallEnded - .milliseconds(40), "\(milliseconds(stallEnded - fresh.captureTime)) ms before the stall ended")
            #expect(fresh.sequence >= stale.sequence + 5)
            // Every frame between the two was dropped by the driver or dequeued and skipped as stale.
            let between = (capture.statistics.driverSequenceGaps - after.driverSequenceGaps)
                + (capture.statistics.framesSkippedStale - after.framesSkippedStale)
            #expect(between == Int(fresh.sequence - stale.sequence) - 1, "\(capture.statistics)")
            #expect(capture.statistics.driverSequenceGaps > after.driverSequenceGaps)
            try capture.release(fresh)
            print("vivid stall: \(capture.statistics); stale frame \(milliseconds(stallEnded - stale.captureTime)) ms old at the stall's end, "
                  + "then sequence \(stale.sequence) → \(fresh.sequence)")
        }

        @Test("a consumer holding its maximum gets no frames, the driver keeps two buffers and streams on; releasing resumes")
        func consumerBusy() throws {
            let capture = V4L2Capture(configuration: V4L2CaptureConfiguration(
                path: try requireNode(NodeName.camera),
                request: .vividVGA,
                bufferCount: 4, exportDMABUF: false))
            try capture.start()
            defer { capture.stop() }
            var held: [V4L2Frame] = []
            while held.count < capture.maximumHeldFrames { held.append(try nextFrame(capture)) }
            let busyBefore = capture.statistics.framesDroppedConsumerBusy
            let gapsBefore = capture.statistics.driverSequenceGaps
            let end = monotonicNow() + .milliseconds(400)
            while monotonicNow() < end {
                guard let fd = capture.fileDescriptor, waitFor(fd, milliseconds: 100) else { continue }
                #expect(try capture.readFreshestFrame(now: monotonicNow()) == nil)
            }
            let dropped = capture.statistics.framesDroppedConsumerBusy - busyBefore
            let gaps = capture.statistics.driverSequenceGaps - gapsBefore
            #expect(dropped >= 4, "only \(dropped) frames requeued unseen in 400 ms at 25 fps")
            // Frames keep coming through the two buffers the driver keeps (under TCG vivid's thread
            // may still miss a tick now and then).
            #expect(dropped > gaps, "the driver ran dry: \(dropped) frames requeued, \(gaps) dropped by the driver")
            for frame in held { try capture.release(frame) }
            let resumed = try nextFrame(capture)
            #expect(resumed.sequence > held.last!.sequence + UInt32(dropped))
            try capture.release(resumed)
            #expect(capture.heldFrameCount == 0)
        }
    }
}

extension KernelDrivers {
    @Suite("V4L2 camera controls on vivid (the \"rtcam\" data channel's listControls and setControl)")
    struct VividControls {
        static let brightness: UInt32 = 0x0098_0900   // V4L2_CID_BRIGHTNESS

        @Test("controls are listed with ranges and values, and set on a handle of their own while the camera streams")
        func listAndSetWhileCapturing() throws {
            let path = try requireNode(NodeName.camera)
            let capture = V4L2Capture(configuration: V4L2CaptureConfiguration(
                path: path, request: V4L2FormatRequest(width: 640, height: 480, preferredPixelFormats: [.nv12], framesPerSecond: 25),
                exportDMABUF: false))
            try capture.start()
            defer { capture.stop() }

            let device = try V4L2ControlDevice(path: path)
            let controls = try device.controls()
            let names = controls.map(\.name)
            for wanted in ["Brightness", "Contrast", "Saturation", "Hue"] {
                #expect(names.contains(wanted), "vivid lists \(names)")
            }
            // Only the user and camera classes: vivid's own test controls (class 0x00f0) are left out.
            #expect(controls.allSatisfy { [0x0098_0000, 0x009A_0000].contains($0.id & 0x0FFF_0000) })
            let brightness = try #require(controls.first { $0.id == Self.brightness })
            #expect(brightness.kind == .integer && brightness.minimum == 0 && brightness.maximum == 255 && brightness.value != nil)
            #expect(!brightness.accepts(256) && !brightness.accepts(-1) && brightness.accepts(200))

            let target: Int64 = brightness.value == 200 ? 60 : 200
            #expect(try device.setValue(target, of: Self.brightness) == target)
            #expect(try V4L2ControlDevice(path: path).value(of: Self.brightness) == target, "another handle reads it back")
            // The capture keeps going with the control changed under it.
            #expect(try !streamFrames(capture, for: .milliseconds(400)).isEmpty)
            #expect(throws: V4L2Error.self) { try device.setValue(1, of: 0x0098_09FF) }   // no such control
        }
    }
}

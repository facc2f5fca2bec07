import RTCBase

/// What one `encodeWaiting` call gave.
public struct V4L2WaitedEncode: Equatable, Sendable {
    public var submission: V4L2EncodeSubmission
    /// Access units that came out meanwhile (usually this frame's; an encoder that pipelines may
    /// hand over the previous one's).
    public var frames: [V4L2EncodedFrame]
    /// The encoder gave the input back: its memory (a camera buffer, for DMABUF import) may be
    /// requeued to the camera. False only when the encoder stopped answering within the waits.
    public var inputReleased: Bool
    public init(submission: V4L2EncodeSubmission, frames: [V4L2EncodedFrame], inputReleased: Bool) {
        self.submission = submission; self.frames = frames; self.inputReleased = inputReleased
    }
}

extension V4L2M2MEncoder {
    /// One camera frame in, and wait until the encoder has let go of it: the simple ownership rule
    /// for a zero-copy chain where the camera buffer goes back to the camera right after this call.
    /// A hardware encoder takes a few milliseconds per frame, well inside one frame interval.
    /// Returns after the input is released and at least one access unit came out, or after
    /// `maximumWaits` polls of `pollTimeoutMilliseconds` without progress.
    public func encodeWaiting(_ input: V4L2EncoderInput, forceKeyFrame: Bool = false,
                              pollTimeoutMilliseconds: Int32 = 50, maximumWaits: Int = 4) throws(V4L2Error) -> V4L2WaitedEncode {
        // Whatever finished since the last call first: it frees a slot for this frame.
        var frames = try readEncoded().frames
        let submission = try encode(input, forceKeyFrame: forceKeyFrame)
        var released = false
        switch submission {
        case .busy:
            return V4L2WaitedEncode(submission: submission, frames: frames, inputReleased: true)
        case let .queued(copied):
            released = copied
        }
        var waitsLeft = maximumWaits
        while true {
            let output = try readEncoded()
            frames += output.frames
            if output.releasedInputTags.contains(input.tag) { released = true }
            if released && !frames.isEmpty { break }
            guard waitsLeft > 0 else { break }
            waitsLeft -= 1
            _ = try waitForOutput(timeoutMilliseconds: pollTimeoutMilliseconds)
        }
        return V4L2WaitedEncode(submission: submission, frames: frames, inputReleased: released)
    }
}

import RTCBase

/// Something that costs memory only a viewer needs (x264's picture buffers, several MB at 720p and
/// partly 2 MB huge pages; the test pattern's 1.4 MB background): made when a frame is wanted, and
/// dropped once nobody has watched for `keepFor`, so an idle camera gives those megabytes back while
/// a viewer who reloads the page does not pay to make them again. One thread owns it (the video
/// thread); time comes from the caller.
struct WhileWatched<Resource> {
    /// How long the resource outlives the last viewer.
    let keepFor: Duration
    /// How long `use` waits after a failed `make` before calling it again.
    let retryAfter: Duration
    private(set) var resource: Resource?
    private var unwatchedSince: MonotonicTime?
    private var failedAt: MonotonicTime?

    init(keepFor: Duration, retryAfter: Duration = .seconds(5)) {
        self.keepFor = keepFor
        self.retryAfter = retryAfter
    }

    /// The resource for a frame someone watches at `now`, made now if it is not there. After `make`
    /// threw, this returns nil without calling it again until `retryAfter` has passed: settings an
    /// encoder refuses are tried, and reported, every few seconds rather than for every frame.
    mutating func use(at now: MonotonicTime, make: () throws -> Resource) rethrows -> Resource? {
        unwatchedSince = nil
        if let resource { return resource }
        if let failedAt, now - failedAt < retryAfter { return nil }
        do {
            let made = try make()
            resource = made
            failedAt = nil
            return made
        } catch {
            failedAt = now
            throw error
        }
    }

    /// Drops the resource now (it no longer fits: the encoder's size changed); the next `use` makes
    /// a new one.
    mutating func discard() {
        resource = nil
        failedAt = nil
    }

    /// Nobody watches at `now`; returns true when this call dropped the resource.
    @discardableResult
    mutating func unwatched(at now: MonotonicTime) -> Bool {
        guard resource != nil else { return false }
        guard let since = unwatchedSince else {
            unwatchedSince = now
            return false
        }
        guard now - since >= keepFor else { return false }
        resource = nil
        unwatchedSince = nil
        return true
    }
}

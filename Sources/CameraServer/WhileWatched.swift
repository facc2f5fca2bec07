import RTCBase

/// Something that costs memory only a viewer needs (x264's picture buffers, several MB at 720p and
/// partly 2 MB huge pages; the test pattern's 1.4 MB background): made when a frame is wanted, and
/// dropped once nobody has watched for `keepFor`, so an idle camera gives those megabytes back while
/// a viewer who reloads the page does not pay to make them again. One thread owns it (the video
/// thread); time comes from the caller.
struct WhileWatched<Resource> {
    /// How long the resource outlives the last viewer.
    let keepFor: Duration
    private(set) var resource: Resource?
    private var unwatchedSince: MonotonicTime?

    init(keepFor: Duration) {
        self.keepFor = keepFor
    }

    /// The resource for a frame someone watches, made now if it is not there.
    mutating func use(make: () throws -> Resource) rethrows -> Resource {
        unwatchedSince = nil
        if let resource { return resource }
        let made = try make()
        resource = made
        return made
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

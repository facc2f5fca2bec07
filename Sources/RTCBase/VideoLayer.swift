/// Which of the camera's video encodings a frame or a viewer belongs to (issue 24): the full one,
/// which every viewer gets, or the reduced one (half the size each side, a bitrate under the
/// encoder's floor) that exists only while a viewer's link is below that floor.
public enum VideoLayer: String, Sendable, Hashable, CaseIterable {
    case full
    case reduced
}

import RTCBase

/// H.264 levels (Annex A, Table A-1): the lowest level whose MaxFS (frame size in macroblocks) and
/// MaxMBPS (macroblocks a second) hold a picture size and rate. Levels 3.1 to 5.1, the range a camera
/// streams in (below 3.1 browsers answer 3.1 anyway).
public enum H264Level {
    /// level_idc (ten times the level: 31 = 3.1), 51 when even 5.1 is too small.
    public static func levelIDC(width: Int, height: Int, framesPerSecond: Int) -> Int {
        let frameMacroblocks = ((width + 15) / 16) * ((height + 15) / 16)
        let macroblocksPerSecond = frameMacroblocks * framesPerSecond
        let table: [(levelIDC: Int, maxFrameSize: Int, maxRate: Int)] = [
            (31, 3_600, 108_000), (32, 5_120, 216_000), (40, 8_192, 245_760),
            (42, 8_704, 522_240), (50, 22_080, 589_824), (51, 36_864, 983_040),
        ]
        return table.first { frameMacroblocks <= $0.maxFrameSize && macroblocksPerSecond <= $0.maxRate }?.levelIDC ?? 51
    }

    /// The profile-level-id (RFC 6184 §8.1) of Constrained Baseline at that level, e.g. "42e01f":
    /// the profile every browser decodes (DESIGN.md).
    public static func constrainedBaselineProfileLevelID(width: Int, height: Int, framesPerSecond: Int) -> String {
        let level = levelIDC(width: width, height: height, framesPerSecond: framesPerSecond)
        return "42e0" + String(level, radix: 16).leftPadded(to: 2)
    }
}

import Testing
@testable import MediaSources

/// H.264 Annex A, Table A-1 limits: MaxFS and MaxMBPS pick the level a picture size and rate need.
@Suite struct H264LevelTests {
    @Test("common camera modes get the level their macroblock rate needs", arguments: [
        (640, 480, 30, 31, "42e01f"),      // 1,200 MB, 36,000 MB/s
        (1280, 720, 30, 31, "42e01f"),     // 3,600 MB, 108,000 MB/s: the top of 3.1
        (1280, 720, 60, 32, "42e020"),
        (1920, 1080, 30, 40, "42e028"),    // 8,160 MB (1088 lines coded)
        (1920, 1080, 60, 42, "42e02a"),
        (2560, 1440, 30, 50, "42e032"),
        (3840, 2160, 30, 51, "42e033"),
        (7680, 4320, 30, 51, "42e033"),    // beyond 5.1: 5.1, the highest rtcam names
    ])
    func levels(width: Int, height: Int, fps: Int, levelIDC: Int, profileLevelID: String) {
        #expect(H264Level.levelIDC(width: width, height: height, framesPerSecond: fps) == levelIDC)
        #expect(H264Level.constrainedBaselineProfileLevelID(width: width, height: height, framesPerSecond: fps) == profileLevelID)
    }
}

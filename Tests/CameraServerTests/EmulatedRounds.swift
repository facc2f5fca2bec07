#if canImport(Glibc)
import Glibc
#endif

/// How many rounds a heavy seeded property test runs: fewer under qemu-user, where
/// board/arm64/test-arm64.sh sets RTCAM_TEST_EMULATED=1 (the same seeds, only fewer of them; the
/// full count runs natively). Each caller's comment says why its smaller count still covers it.
func emulatedRounds(native: Int, emulated: Int) -> Int {
    getenv("RTCAM_TEST_EMULATED") == nil ? native : emulated
}

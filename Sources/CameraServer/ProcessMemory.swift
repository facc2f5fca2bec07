#if canImport(Glibc)
import Glibc
#endif
internal import CProcessMemory

/// The process-wide memory settings of the daemon (issue 23: its resident set on a small board).
public enum ProcessMemory {
    /// Turns transparent huge pages off for the whole process, before any thread is started.
    ///
    /// Debian's kernels (amd64 and arm64, so also a Pi that runs Debian's kernel) boot with
    /// `transparent_hugepage=always`: an anonymous mapping's 2 MiB-aligned stretch is then filled
    /// with one huge page at its first touch. A thread stack (8 MiB) placed right under one of
    /// malloc's 64 MiB-aligned arena reservations ends on a 2 MiB boundary, so the first call that
    /// touches its top maps 2 MiB where the thread uses a few KiB: measured in the test VMs, +2 MiB
    /// of anonymous memory in some runs and not in others (where the stacks happened to land). The
    /// daemon's buffers are small or short-lived; it gains nothing from huge pages. Returns the errno
    /// when the kernel refuses (before Linux 3.15), nil when done. Programs it starts (an `exec:`
    /// source) inherit the setting.
    @discardableResult
    public static func disableTransparentHugePages() -> Int32? {
        setTransparentHugePages(disabled: true)
    }

    /// The switch both ways (tests turn it back off to compare).
    @discardableResult
    public static func setTransparentHugePages(disabled: Bool) -> Int32? {
        rtcam_set_transparent_huge_pages_disabled(disabled ? 1 : 0) == 0 ? nil : errno
    }

    /// True while `disableTransparentHugePages` is in force for this process.
    public static var transparentHugePagesDisabled: Bool {
        rtcam_transparent_huge_pages_disabled() == 1
    }

    /// Gives the heap's freed pages back to the system (glibc's malloc_trim): after an idle camera
    /// dropped its encoder, whose buffers would otherwise stay in that thread's malloc arena.
    static func releaseFreedHeap() {
        _ = malloc_trim(0)
    }
}

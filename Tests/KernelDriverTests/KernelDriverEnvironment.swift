import Glibc

/// Set by board/qemu-x86_64's runner inside the guest: the real vivid, vicodec and snd-aloop drivers
/// are loaded. Everywhere else these suites are skipped.
enum KernelDriverEnvironment {
    static var isInsideTestVM: Bool {
        guard let value = getenv("RTCAM_VM") else { return false }
        return String(cString: value) == "1"
    }
}

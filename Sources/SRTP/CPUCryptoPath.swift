internal import CCPUCrypto

/// Which of the CPU's crypto instructions AcceleratedAES128 and AcceleratedHMACSHA1 run on here,
/// detected once at run time: "AES-NI+SHA-NI" (x86-64), "ARMv8 AES+SHA1" (a Pi 5's Cortex-A76),
/// "none" (a Pi 4's Cortex-A72: mbedTLS's C does the work), or one of the two.
public enum CPUCryptoPath {
    public static var name: String { String(cString: rtcam_cpu_crypto_path()) }
}

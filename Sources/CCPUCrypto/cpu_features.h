// Which crypto instructions this CPU has, read once: CPUID on x86-64, the kernel's AT_HWCAP on
// aarch64. RTCAM_CPU_CRYPTO=none in the environment hides them (tests of the fallback, comparisons).
#pragma once

enum {
    rtcam_cpu_aes = 1 << 0,    // x86-64: AESENC & co. (with SSE2); aarch64: AESE/AESMC (FEAT_AES)
    rtcam_cpu_sha1 = 1 << 1,   // x86-64: SHA1RNDS4 & co. (with SSSE3, SSE4.1); aarch64: SHA1C & co. (FEAT_SHA1)
};

// A mask of the rtcam_cpu_* flags.
int rtcam_cpu_crypto_features(void);

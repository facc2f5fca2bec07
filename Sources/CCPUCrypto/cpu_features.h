// Which of the crypto instructions this CPU has, read once with CPUID (x86-64; elsewhere none).
#pragma once

enum {
    rtcam_cpu_aes_ni = 1 << 0,   // AESENC & co. (with SSE2)
    rtcam_cpu_sha_ni = 1 << 1,   // SHA1RNDS4 & co. (with SSSE3 and SSE4.1, which the code also uses)
};

// A mask of the rtcam_cpu_* flags.
int rtcam_cpu_crypto_features(void);

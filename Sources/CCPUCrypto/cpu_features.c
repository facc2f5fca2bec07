// See cpu_features.h.
#include "cpu_features.h"

#if defined(__x86_64__)
#include <cpuid.h>

static int detect(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    const int sse2 = (edx >> 26) & 1, ssse3 = (ecx >> 9) & 1, sse41 = (ecx >> 19) & 1, aes = (ecx >> 25) & 1;
    int features = aes && sse2 ? rtcam_cpu_aes_ni : 0;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && ((ebx >> 29) & 1) && ssse3 && sse41) {
        features |= rtcam_cpu_sha_ni;
    }
    return features;
}
#endif

int rtcam_cpu_crypto_features(void) {
#if defined(__x86_64__)
    static int cached = -1;   // a benign race: every thread computes the same value
    if (cached < 0) cached = detect();
    return cached;
#else
    return 0;
#endif
}

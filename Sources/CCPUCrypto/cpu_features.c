// See cpu_features.h.
#include "cpu_features.h"
#include "rtcam_cpu_crypto.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

static int detect(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    const int sse2 = (edx >> 26) & 1, ssse3 = (ecx >> 9) & 1, sse41 = (ecx >> 19) & 1, aes = (ecx >> 25) & 1;
    int features = aes && sse2 ? rtcam_cpu_aes : 0;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && ((ebx >> 29) & 1) && ssse3 && sse41) {
        features |= rtcam_cpu_sha1;
    }
    return features;
}
#elif defined(__aarch64__)
#include <sys/auxv.h>

// The bits of AT_HWCAP (the kernel's arch/arm64 uapi hwcap.h), spelled here so the build does not
// depend on the sysroot's kernel headers.
enum { hwcap_aes = 1 << 3, hwcap_sha1 = 1 << 5 };

static int detect(void) {
    const unsigned long hwcap = getauxval(AT_HWCAP);
    return ((hwcap & hwcap_aes) ? rtcam_cpu_aes : 0) | ((hwcap & hwcap_sha1) ? rtcam_cpu_sha1 : 0);
}
#else
static int detect(void) { return 0; }
#endif

// RTCAM_CPU_CRYPTO=none in the environment: behave as a CPU without the instructions (a Pi 4), so
// the fallback is testable where every CPU model has them (qemu 7.2's aarch64 models all do).
static int allowed(void) {
    const char *setting = getenv("RTCAM_CPU_CRYPTO");
    return setting != NULL && strcmp(setting, "none") == 0 ? 0 : ~0;
}

int rtcam_cpu_crypto_features(void) {
    static int cached = -1;   // a benign race: every thread computes the same value
    if (cached < 0) cached = detect() & allowed();
    return cached;
}

const char *rtcam_cpu_crypto_path(void) {
    const int features = rtcam_cpu_crypto_features();
#if defined(__x86_64__)
    static const char *const names[4] = {"none", "AES-NI", "SHA-NI", "AES-NI+SHA-NI"};
#elif defined(__aarch64__)
    static const char *const names[4] = {"none", "ARMv8 AES", "ARMv8 SHA1", "ARMv8 AES+SHA1"};
#else
    static const char *const names[4] = {"none", "none", "none", "none"};
#endif
    return names[features & 3];
}

// Which path the accelerated SRTP primitives take on this CPU, for logs and `rtcam-bench srtp`.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// "AES-NI+SHA-NI", "ARMv8 AES+SHA1", "ARMv8 AES", …, or "none" (mbedTLS's C then does the work).
const char *rtcam_cpu_crypto_path(void);

#ifdef __cplusplus
}
#endif

// See include/rtcam_aes128.h. Key expansion per FIPS 197 §5.2 with AESKEYGENASSIST.
#include "rtcam_aes128.h"

#include <string.h>

#include "cpu_features.h"

#if defined(__x86_64__)
#include <immintrin.h>

// The next round key from the previous one and AESKEYGENASSIST's output for it:
// w[i] = w[i-4] ^ (SubWord(RotWord(w[i-1])) ^ Rcon) for the first word, and prefix XORs after.
__attribute__((target("aes,sse2")))
static __m128i next_round_key(__m128i previous, __m128i assist) {
    assist = _mm_shuffle_epi32(assist, 0xFF);
    previous = _mm_xor_si128(previous, _mm_slli_si128(previous, 4));
    previous = _mm_xor_si128(previous, _mm_slli_si128(previous, 4));
    previous = _mm_xor_si128(previous, _mm_slli_si128(previous, 4));
    return _mm_xor_si128(previous, assist);
}

__attribute__((target("aes,sse2")))
static void set_key_aes_ni(rtcam_aes128 *context, const uint8_t key[16]) {
    __m128i *keys = (__m128i *)context->round_keys;
    keys[0] = _mm_loadu_si128((const __m128i *)key);
    // The round constant is an immediate of the instruction: one line per round.
    keys[1] = next_round_key(keys[0], _mm_aeskeygenassist_si128(keys[0], 0x01));
    keys[2] = next_round_key(keys[1], _mm_aeskeygenassist_si128(keys[1], 0x02));
    keys[3] = next_round_key(keys[2], _mm_aeskeygenassist_si128(keys[2], 0x04));
    keys[4] = next_round_key(keys[3], _mm_aeskeygenassist_si128(keys[3], 0x08));
    keys[5] = next_round_key(keys[4], _mm_aeskeygenassist_si128(keys[4], 0x10));
    keys[6] = next_round_key(keys[5], _mm_aeskeygenassist_si128(keys[5], 0x20));
    keys[7] = next_round_key(keys[6], _mm_aeskeygenassist_si128(keys[6], 0x40));
    keys[8] = next_round_key(keys[7], _mm_aeskeygenassist_si128(keys[7], 0x80));
    keys[9] = next_round_key(keys[8], _mm_aeskeygenassist_si128(keys[8], 0x1B));
    keys[10] = next_round_key(keys[9], _mm_aeskeygenassist_si128(keys[9], 0x36));
}

// `lanes` blocks go through each round together, so AESENC's latency overlaps. Inlined with a
// constant `lanes` and unrolled, the states stay in registers.
__attribute__((target("aes,sse2"), always_inline))
static inline void encrypt_together(const __m128i *keys, uint8_t *blocks, const int lanes) {
    __m128i state[8];
#pragma clang loop unroll(full)
    for (int i = 0; i < lanes; i++) {
        state[i] = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(blocks + 16 * i)), keys[0]);
    }
#pragma clang loop unroll(full)
    for (int round = 1; round < 10; round++) {
#pragma clang loop unroll(full)
        for (int i = 0; i < lanes; i++) state[i] = _mm_aesenc_si128(state[i], keys[round]);
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < lanes; i++) {
        _mm_storeu_si128((__m128i *)(blocks + 16 * i), _mm_aesenclast_si128(state[i], keys[10]));
    }
}

__attribute__((target("aes,sse2")))
static void encrypt_aes_ni(const rtcam_aes128 *context, uint8_t *blocks, size_t count) {
    const __m128i *keys = (const __m128i *)context->round_keys;
    for (; count >= 8; count -= 8, blocks += 16 * 8) encrypt_together(keys, blocks, 8);
    if (count >= 4) {
        encrypt_together(keys, blocks, 4);
        count -= 4;
        blocks += 16 * 4;
    }
    for (; count > 0; count--, blocks += 16) encrypt_together(keys, blocks, 1);
}
#endif

int rtcam_aes_accelerated(void) {
    return (rtcam_cpu_crypto_features() & rtcam_cpu_aes_ni) != 0;
}

void rtcam_aes128_set_key(rtcam_aes128 *context, const uint8_t key[16]) {
#if defined(__x86_64__)
    set_key_aes_ni(context, key);
#else
    (void)key;
    memset(context, 0, sizeof *context);
#endif
}

void rtcam_aes128_encrypt_blocks(const rtcam_aes128 *context, uint8_t *blocks, size_t count) {
#if defined(__x86_64__)
    encrypt_aes_ni(context, blocks, count);
#else
    (void)context; (void)blocks; (void)count;
#endif
}

// See include/rtcam_aes128.h. Two paths, chosen at run time: x86-64's AES-NI (key expansion per
// FIPS 197 §5.2 with AESKEYGENASSIST) and ARMv8's AESE/AESMC (Cortex-A76 of a Pi 5; a Pi 4's A72
// has no crypto extension and keeps mbedTLS's C).
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
#elif defined(__aarch64__)
#include <arm_neon.h>

// SubWord (FIPS 197 §5.2) of one 32-bit word with AESE: with the same word in all four columns and
// a zero round key, ShiftRows only moves equal bytes, so every lane holds SubBytes of the word.
__attribute__((target("aes")))
static uint32_t sub_word(uint32_t word) {
    const uint8x16_t state = vaeseq_u8(vreinterpretq_u8_u32(vdupq_n_u32(word)), vdupq_n_u8(0));
    return vgetq_lane_u32(vreinterpretq_u32_u8(state), 0);
}

// FIPS 197 §5.2 on little-endian words (byte 0 of a word is its low byte): RotWord is a right
// rotation by 8 bits, and Rcon lands in the low byte.
__attribute__((target("aes")))
static void set_key_armv8(rtcam_aes128 *context, const uint8_t key[16]) {
    static const uint8_t rcon[10] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36};
    uint32_t words[44];
    memcpy(words, key, 16);
    for (int i = 4; i < 44; i++) {
        uint32_t temp = words[i - 1];
        if (i % 4 == 0) {
            const uint32_t substituted = sub_word(temp);
            temp = ((substituted >> 8) | (substituted << 24)) ^ rcon[i / 4 - 1];
        }
        words[i] = words[i - 4] ^ temp;
    }
    memcpy(context->round_keys, words, sizeof context->round_keys);
    explicit_bzero(words, sizeof words);
}

// AESE is AddRoundKey then SubBytes and ShiftRows, AESMC is MixColumns: nine full rounds, then the
// last without MixColumns and the eleventh key XORed. `lanes` blocks in flight hide AESE's latency.
__attribute__((target("aes"), always_inline))
static inline void encrypt_together_armv8(const uint8x16_t keys[11], uint8_t *blocks, const int lanes) {
    uint8x16_t state[8];
#pragma clang loop unroll(full)
    for (int i = 0; i < lanes; i++) state[i] = vld1q_u8(blocks + 16 * i);
#pragma clang loop unroll(full)
    for (int round = 0; round < 9; round++) {
#pragma clang loop unroll(full)
        for (int i = 0; i < lanes; i++) state[i] = vaesmcq_u8(vaeseq_u8(state[i], keys[round]));
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < lanes; i++) {
        vst1q_u8(blocks + 16 * i, veorq_u8(vaeseq_u8(state[i], keys[9]), keys[10]));
    }
}

__attribute__((target("aes")))
static void encrypt_armv8(const rtcam_aes128 *context, uint8_t *blocks, size_t count) {
    uint8x16_t keys[11];
    for (int round = 0; round < 11; round++) keys[round] = vld1q_u8(context->round_keys + 16 * round);
    for (; count >= 8; count -= 8, blocks += 16 * 8) encrypt_together_armv8(keys, blocks, 8);
    if (count >= 4) {
        encrypt_together_armv8(keys, blocks, 4);
        count -= 4;
        blocks += 16 * 4;
    }
    for (; count > 0; count--, blocks += 16) encrypt_together_armv8(keys, blocks, 1);
}
#endif

int rtcam_aes_accelerated(void) {
    return (rtcam_cpu_crypto_features() & rtcam_cpu_aes) != 0;
}

void rtcam_aes128_set_key(rtcam_aes128 *context, const uint8_t key[16]) {
#if defined(__x86_64__)
    set_key_aes_ni(context, key);
#elif defined(__aarch64__)
    set_key_armv8(context, key);
#else
    (void)key;
    memset(context, 0, sizeof *context);
#endif
}

void rtcam_aes128_encrypt_blocks(const rtcam_aes128 *context, uint8_t *blocks, size_t count) {
#if defined(__x86_64__)
    encrypt_aes_ni(context, blocks, count);
#elif defined(__aarch64__)
    encrypt_armv8(context, blocks, count);
#else
    (void)context; (void)blocks; (void)count;
#endif
}

// What ollamakit's kernels share: the tensor struct ggml hands a custom operation, and the few
// float operations each kernel must do exactly as ggml does them.

#ifndef OLLAMAKIT_KERNELS_H
#define OLLAMAKIT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

// The leading fields of struct ggml_tensor (ggml.h), as ollamakit/lib/ggml/lib.py declares them.
struct tensor {
    int type;
    void *buffer;
    int64_t ne[4];
    size_t nb[4];
    int op;
    int32_t op_params[16];
    int32_t flags;
    struct tensor *src[10];
    struct tensor *view_src;
    size_t view_offs;
    void *data;
    char name[64];
    void *extra;
    char padding[8];
};

// The rows [*first, *last) of n that thread ith of nth computes: whole runs of `unit` rows.
static inline void thread_rows(int64_t n, int unit, int ith, int nth, int64_t *first,
                               int64_t *last) {
    const int64_t units = (n + unit - 1) / unit;
    const int64_t per = (units + nth - 1) / nth;
    *first = ith * per * unit < n ? ith * per * unit : n;
    *last = *first + per * unit < n ? *first + per * unit : n;
}

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define OLLAMAKIT_KERNELS 1
#include <immintrin.h>

typedef struct { uint16_t d; int8_t qs[32]; } block_q8_0;

static inline float half(uint16_t h) { return _cvtsh_ss(h); }

// ggml's hsum_float_8 and llamafile's hsum(__m256), which add in the same order
static inline float hsum8(__m256 x) {
    __m128 r = _mm256_extractf128_ps(x, 1);
    r = _mm_add_ps(r, _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

// 16 bytes of nibbles as 32 bytes 0..15: the low nibbles, then the high ones
static inline __m256i nibbles(const uint8_t *qs) {
    const __m128i packed = _mm_loadu_si128((const __m128i *)qs);
    const __m256i both = _mm256_insertf128_si256(
        _mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}
#endif

#endif

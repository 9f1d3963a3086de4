// Q8_0 and Q5_0 weights times Q8_0 activations, for steps of two rows or more.
//
// ggml hands these products to llamafile's tinyBLAS (tinyBLAS_Q0_AVX), whose every output,
// whatever the shape of the tile it falls in, is
//     acc (8 float lanes) = 0
//     for each block: acc = fma(broadcast(d_w * d_x), float(lane sums), acc)
//     output = hsum(acc)
// where each lane sum is the integer sum of four products of weight and activation bytes, taken
// as |w| times x with w's sign (vpsignb on both operands, for every row and column again).
// The kernel below computes the same integers another way: the weight bytes offset by 128 once
// per block for all the columns (unsigned, as vpdpbusd wants them), and each column's sums
// started at minus 128 times its own sums of four, once per block for all the rows. Both ways
// give the exact sums, so the floats that follow, in tinyBLAS's order, are tinyBLAS's bit for
// bit. They part in one case only: an activation byte of -128 under a negative weight, whose
// sign flip wraps in tinyBLAS. ggml's quantize_row_q8_0 writes no -128 from finite values; a
// group of columns that holds one is computed with tinyBLAS's own sign flips.
//
// Where the CPU lacks VNNI, tinyBLAS sums with vpmaddubsw, which the offset bytes would
// saturate, so the kernel takes tinyBLAS's sign flips too and saves only the repeated decoding.

#include "kernels.h"

#ifdef OLLAMAKIT_KERNELS
#include <stdlib.h>
#include <string.h>

typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } block_q5_0;

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define DPBUSD(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#elif defined(__AVXVNNI__)
#define DPBUSD(acc, u, s) _mm256_dpbusd_avx_epi32(acc, u, s)
#endif

#ifdef DPBUSD
#define OFFSET_SUMS 1
#else
#define OFFSET_SUMS 0
#endif

// tinyBLAS's lane sums: |w| times x signed as w
static inline __m256i signed_sums(__m256i w, __m256i x) {
    const __m256i u = _mm256_sign_epi8(w, w), s = _mm256_sign_epi8(x, w);
#ifdef DPBUSD
    return DPBUSD(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_set1_epi16(1), _mm256_maddubs_epi16(u, s));
#endif
}

// A weight block's 32 values as signed bytes.
static inline __m256i values_q8_0(const void *block) {
    return _mm256_loadu_si256((const __m256i *)((const block_q8_0 *)block)->qs);
}

static inline __m256i values_q5_0(const void *block) {
    const block_q5_0 *b = block;
    uint32_t high;
    memcpy(&high, b->qh, sizeof high);
    // byte i takes byte i/8 of the fifth bits, then its bit i%8; a clear bit means value - 16
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)high),
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
    const __m256i bit = _mm256_and_si256(spread, _mm256_set1_epi64x(0x8040201008040201));
    const __m256i clear = _mm256_cmpeq_epi8(bit, _mm256_setzero_si256());
    return _mm256_or_si256(nibbles(b->qs), _mm256_and_si256(clear, _mm256_set1_epi8((char)0xF0)));
}

enum weight { Q8_0, Q5_0 };

static inline __m256i values(enum weight kind, const void *block) {
    return kind == Q8_0 ? values_q8_0(block) : values_q5_0(block);
}

static inline size_t block_size(enum weight kind) {
    return kind == Q8_0 ? sizeof(block_q8_0) : sizeof(block_q5_0);
}

// Up to 4 columns' blocks, prepared once for all the rows: each block's scale as a float, and
// where the sums start (minus 128 times each lane's sum of four activation bytes).
struct columns {
    const block_q8_0 *x[4];
    float *scale;   // [block][4 columns]
    __m256i *start; // [column][block]
};

// Returns whether a block of the columns holds a -128.
static int prepare(struct columns *c, int cols, int blocks) {
    __m256i lowest = _mm256_set1_epi8((char)0x7F);
    for (int j = 0; j < cols; j++) {
        for (int b = 0; b < blocks; b++) {
            const __m256i x = _mm256_loadu_si256((const __m256i *)c->x[j][b].qs);
            lowest = _mm256_min_epi8(lowest, x);
            c->scale[b * 4 + j] = half(c->x[j][b].d);
#if OFFSET_SUMS
            const __m256i sums = DPBUSD(_mm256_setzero_si256(), _mm256_set1_epi8((char)0x80), x);
            c->start[j * blocks + b] = _mm256_sub_epi32(_mm256_setzero_si256(), sums);
#endif
        }
    }
    const __m256i min = _mm256_set1_epi8((char)0x80);
    return !_mm256_testz_si256(_mm256_cmpeq_epi8(lowest, min), _mm256_cmpeq_epi8(lowest, min));
}

// rows [first, last) of the weights times cols prepared columns (a constant where inlined, so
// the row's sums stay in registers), a row at a time: the weights stream in the order they lie
static inline __attribute__((always_inline)) void rows_by_columns(
    enum weight kind, int exact, const char *w, size_t w_row, int64_t first, int64_t last,
    const struct columns *c, int cols, int blocks, char *out, size_t out_col) {
    const size_t size = block_size(kind);
    for (int64_t r = first; r < last; r++) {
        const char *row = w + r * w_row;
        __m256 acc[4];
        for (int j = 0; j < cols; j++) acc[j] = _mm256_setzero_ps();
        for (int b = 0; b < blocks; b++) {
            const char *block = row + b * size;
            // the scales' products for the 4 columns at once, each lane then broadcast
            const __m256 scales = _mm256_mul_ps(_mm256_set1_ps(half(*(const uint16_t *)block)),
                                                _mm256_broadcast_ps((const __m128 *)&c->scale[b * 4]));
            const __m256i q = values(kind, block);
            const __m256i u = _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80));
            for (int j = 0; j < cols; j++) {
                const __m256i x = _mm256_loadu_si256((const __m256i *)c->x[j][b].qs);
                __m256i sums;
#if OFFSET_SUMS
                sums = exact ? signed_sums(q, x) : DPBUSD(c->start[j * blocks + b], u, x);
#else
                (void)u, (void)exact;
                sums = signed_sums(q, x);
#endif
                const __m256 scale = _mm256_permutevar_ps(scales, _mm256_set1_epi32(j));
                acc[j] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sums), acc[j]);
            }
        }
        for (int j = 0; j < cols; j++) ((float *)(out + j * out_col))[r] = hsum8(acc[j]);
    }
}

#define ROWS_PER_CHUNK 32  // a run of weight rows that stays in L1 while every column passes

static inline __attribute__((always_inline)) void mul_mat(
    enum weight kind, struct tensor *dst, int ith, int nth) {
    const struct tensor *w = dst->src[0], *x = dst->src[1];
    const int blocks = (int)(w->ne[0] / 32);
    const int64_t cols = x->ne[1];
    int64_t first, last;
    thread_rows(w->ne[1], 8, ith, nth, &first, &last);
    if (first >= last) return;
    struct columns c;
    c.scale = aligned_alloc(16, 4 * (size_t)blocks * sizeof(float));
    c.start = aligned_alloc(32, 4 * (size_t)blocks * sizeof(__m256i));
    if (c.scale == NULL || c.start == NULL) abort();  // a few KiB
    memset(c.scale, 0, 4 * (size_t)blocks * sizeof(float));  // the lanes of absent columns
    // with one group of columns, every row in one pass; else chunks of rows, each read once from
    // memory for all the groups
    const int64_t chunk = cols <= 4 ? last - first : ROWS_PER_CHUNK;
    for (int64_t r = first; r < last; r += chunk) {
        const int64_t stop = r + chunk < last ? r + chunk : last;
        for (int64_t col = 0; col < cols; col += 4) {
            const int width = cols - col < 4 ? (int)(cols - col) : 4;
            for (int j = 0; j < width; j++) {
                c.x[j] = (const block_q8_0 *)((const char *)x->data + (col + j) * x->nb[1]);
            }
            const int exact = prepare(&c, width, blocks);
            char *out = (char *)dst->data + col * dst->nb[1];
            const char *wd = w->data;
            const size_t nb1 = w->nb[1], on = dst->nb[1];
#define CASE(n)                                                                            \
    case n:                                                                                \
        if (exact) rows_by_columns(kind, 1, wd, nb1, r, stop, &c, n, blocks, out, on);     \
        else rows_by_columns(kind, 0, wd, nb1, r, stop, &c, n, blocks, out, on);           \
        break;
            switch (width) { CASE(1) CASE(2) CASE(3) CASE(4) }
#undef CASE
        }
    }
    free(c.scale);
    free(c.start);
}

void ollamakit_mul_mat_q8_0(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)userdata;
    mul_mat(Q8_0, dst, ith, nth);
}

void ollamakit_mul_mat_q5_0(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)userdata;
    mul_mat(Q5_0, dst, ith, nth);
}

#else  // other CPUs: ggml's own products

void ollamakit_mul_mat_q8_0(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)dst, (void)ith, (void)nth, (void)userdata;
}

void ollamakit_mul_mat_q5_0(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)dst, (void)ith, (void)nth, (void)userdata;
}

#endif

// Q6_K weights times Q8_K activations, several activation columns per weight block decoded.
//
// ggml multiplies a Q6_K matrix with ggml_vec_dot_q6_K_q8_K, one call per (row, column): each
// call decodes the block's 6-bit values and its 16 scales again. Per block of 256 values its x86
// version keeps 8 int32 lanes: lane m gathers, from each of the block's 8 runs of 32 values, the
// products of values 4m..4m+3 (pairs summed by vpmaddubsw), times the run's scale for its half
// (vpmaddwd), less 32 times the activations' group sums times their scales (the values' offset
// of 32); then one fused multiply-add of the lanes, as floats, by d_x * d_w, and ggml's
// horizontal sum at the end. The lanes are exact integers, so gathering them in another order
// (here: started at the offset term, each run's products added by vpdpwssd where the CPU has
// VNNI) gives the same integers, and the float operations that follow are ggml's, in its order:
// each output is ggml's bit for bit. The block is decoded once for up to 7 columns.
// ggml takes products of 8 columns and more to its own tiled K-quant kernels (ggml-cpu/tiled),
// so the engine gives this kernel steps of 2 to 7 rows only.

#include "kernels.h"

#ifdef OLLAMAKIT_KERNELS
#include <stdlib.h>

#define QK_K 256

typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
} block_q6_K;

typedef struct {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
} block_q8_K;

// acc + the int16 pairs of a times those of b, summed into int32 lanes (exact here)
static inline __m256i add_pair_products(__m256i acc, __m256i a, __m256i b) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpwssd_epi32(acc, a, b);
#elif defined(__AVXVNNI__)
    return _mm256_dpwssd_avx_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

// A weight block decoded: its 8 runs of 32 values (0..63), each run's two scales as 16 int16
// lanes (8 of each), and -32 times the 16 scales, for the offset term.
struct decoded {
    __m256i values[8];
    __m256i scales[8];
    __m256i offset_scales;
};

static inline void decode(const block_q6_K *b, struct decoded *out) {
    const __m256i low4 = _mm256_set1_epi8(15), bits45 = _mm256_set1_epi8(0x30);
    for (int half = 0; half < 2; half++) {
        const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * half));
        const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * half + 32));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * half));
        // the high two bits of runs 0..3 of this half (bits 0-1, 2-3, 4-5, 6-7 of qh) moved to
        // bits 4-5 by one shift each (what a 16-bit shift carries across bytes lands elsewhere)
        const __m256i h0 = _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45);
        const __m256i h1 = _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45);
        const __m256i h2 = _mm256_and_si256(qh, bits45);
        const __m256i h3 = _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45);
        __m256i *v = out->values + 4 * half;
        v[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4), h0);
        v[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4), h1);
        v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), h2);
        v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4), h3);
    }
    const __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    // scales 0-7, then 8-15, as int16 in both 128-bit lanes: one byte shuffle a run then takes
    // scale 2*run for the run's first 16 values (low lane) and 2*run+1 for the next 16
    const __m256i lows = _mm256_permute4x64_epi64(scales, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256i highs = _mm256_permute4x64_epi64(scales, _MM_SHUFFLE(3, 2, 3, 2));
    for (int run = 0; run < 8; run++) {
        const char a = (char)(4 * (run % 4)), c = (char)(4 * (run % 4) + 2);
        const __m256i pick = _mm256_setr_epi8(
            a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1,
            c, c + 1, c, c + 1, c, c + 1, c, c + 1, c, c + 1, c, c + 1, c, c + 1, c, c + 1);
        out->scales[run] = _mm256_shuffle_epi8(run < 4 ? lows : highs, pick);
    }
    out->offset_scales = _mm256_mullo_epi16(scales, _mm256_set1_epi16(-32));
}

// The weights stream from memory faster when asked for 2 KiB ahead (measured: up to 2x on 4
// columns of Qwen2.5's FFN, 1536 rows of 8960); a prefetch past the matrix's end is harmless.
#define PREFETCH_BLOCKS 10

static inline void prefetch_block(const block_q6_K *b) {
    for (size_t line = 0; line < sizeof *b; line += 64) _mm_prefetch((const char *)b + line, _MM_HINT_T0);
}

#define CHUNK_ROWS 8  // weight rows (about 13 KiB each for Qwen2.5's FFN) kept in cache while
                      // every group of columns passes
#define MOST_COLUMNS 7  // columns a pass over the weights takes (from 8, ggml's tiled products)

// rows [first, last) of the weights times cols columns (a constant where inlined), a row at a
// time: the weights stream in the order they lie
static inline __attribute__((always_inline)) void rows_by_columns(
    const char *w, size_t w_row, int64_t first, int64_t last, const block_q8_K *const *x,
    int cols, int blocks, char *out, size_t out_col) {
    struct decoded dec;
    for (int64_t r = first; r < last; r++) {
        const block_q6_K *row = (const block_q6_K *)(w + r * w_row);
        __m256 acc[MOST_COLUMNS];
        for (int j = 0; j < cols; j++) acc[j] = _mm256_setzero_ps();
        for (int b = 0; b < blocks; b++) {
            prefetch_block(row + b + PREFETCH_BLOCKS);
            decode(row + b, &dec);
            const float dw = half(row[b].d);
            for (int j = 0; j < cols; j++) {
                const block_q8_K *y = x[j] + b;
                // the offset term, -32 * (bsums . scales) in ggml's lanes, starts the lanes;
                // the even and the odd runs add in two chains (half the wait on each sum)
                __m256i even = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums),
                                                 dec.offset_scales);
                __m256i odd = _mm256_setzero_si256();
                for (int run = 0; run < 8; run += 2) {
                    const __m256i *q8 = (const __m256i *)(y->qs + 32 * run);
                    even = add_pair_products(even, dec.scales[run],
                                             _mm256_maddubs_epi16(dec.values[run], _mm256_loadu_si256(q8)));
                    odd = add_pair_products(odd, dec.scales[run + 1],
                                            _mm256_maddubs_epi16(dec.values[run + 1], _mm256_loadu_si256(q8 + 1)));
                }
                const __m256i sums = _mm256_add_epi32(even, odd);
                const float d = y->d * dw;
                acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sums), acc[j]);
            }
        }
        for (int j = 0; j < cols; j++) ((float *)(out + j * out_col))[r] = hsum8(acc[j]);
    }
}

void ollamakit_mul_mat_q6_k(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)userdata;
    const struct tensor *w = dst->src[0], *x = dst->src[1];
    const int blocks = (int)(w->ne[0] / QK_K);
    const int64_t cols = x->ne[1];
    int64_t first, last;
    thread_rows(w->ne[1], CHUNK_ROWS, ith, nth, &first, &last);
    for (int64_t r = first; r < last; r += CHUNK_ROWS) {
        const int64_t stop = r + CHUNK_ROWS < last ? r + CHUNK_ROWS : last;
        for (int64_t col = 0; col < cols; col += MOST_COLUMNS) {
            const int width = cols - col < MOST_COLUMNS ? (int)(cols - col) : MOST_COLUMNS;
            const block_q8_K *xs[MOST_COLUMNS];
            for (int j = 0; j < width; j++) {
                xs[j] = (const block_q8_K *)((const char *)x->data + (col + j) * x->nb[1]);
            }
            char *out = (char *)dst->data + col * dst->nb[1];
            const char *wd = w->data;
            const size_t nb1 = w->nb[1], on = dst->nb[1];
            switch (width) {
            case 1: rows_by_columns(wd, nb1, r, stop, xs, 1, blocks, out, on); break;
            case 2: rows_by_columns(wd, nb1, r, stop, xs, 2, blocks, out, on); break;
            case 3: rows_by_columns(wd, nb1, r, stop, xs, 3, blocks, out, on); break;
            case 4: rows_by_columns(wd, nb1, r, stop, xs, 4, blocks, out, on); break;
            case 5: rows_by_columns(wd, nb1, r, stop, xs, 5, blocks, out, on); break;
            case 6: rows_by_columns(wd, nb1, r, stop, xs, 6, blocks, out, on); break;
            default: rows_by_columns(wd, nb1, r, stop, xs, 7, blocks, out, on); break;
            }
        }
    }
}

#else  // other CPUs: ggml's own products

void ollamakit_mul_mat_q6_k(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)dst, (void)ith, (void)nth, (void)userdata;
}

#endif

// Q4_K weights, as ggml's CPU backend repacks them, times Q8_K activations, several activation
// columns per weight block read.
//
// On x86 with AVX2 ggml stores a Q4_K matrix's rows 8 at a time, interleaved (block_q4_Kx8: the
// 8 rows' scales, then their nibbles 8 bytes of a row at a time), and multiplies it with
// ggml_gemm_q4_K_8x8_q8_K for each whole group of 4 activation columns and with
// ggml_gemv_q4_K_8x8_q8_K for each column left over (repack.cpp, forward_mul_mat_one_chunk).
// Both gather exact integers per output: the products of a run of 32 weights with 32
// activations times the run's 6-bit scale, and the runs' minimums times the activations' sums
// of 32. Only what follows is float, and the two differ there:
// - gemm: for each block, for each pair of runs (64 values), one fused multiply-add of the pair's
//   integer sum by d_w * d_x into the output's sum, and one of the pair's minimum term by
//   dmin_w * d_x into a second sum;
// - gemv: the same per block, with the integer sums of all 8 runs;
// then the first sum less the second. This kernel gathers the same integers in its own order
// (vpdpbusd where the CPU has VNNI, exact either way), and does those float operations in that
// order: a column of a whole group of 4 as gemm does, one left over as gemv does, so each output
// is ggml's bit for bit. Each weight block is decoded once for a group of up to 4 columns.

#include "kernels.h"

#ifdef OLLAMAKIT_KERNELS
#include <string.h>

#define QK_K 256
#define GROUP 4  // activation columns that gemm takes together, and this kernel's tile

typedef struct {
    uint16_t d[8];
    uint16_t dmin[8];
    uint8_t scales[96];  // per run k, 12 bytes: the 8 rows' 6-bit scales and minimums
    uint8_t qs[1024];    // per pair of runs, 256 bytes: 4 times 8 bytes of each of the 8 rows
} block_q4_Kx8;

typedef struct {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
} block_q8_K;

// With AVX-512 (BW and VNNI) a 512-bit register holds a 64-value run piece of all 8 rows;
// otherwise two 256-bit ones hold 4 rows each.
#if defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define WIDE 1
#endif

// acc + the products of 4 unsigned bytes of a by 4 signed bytes of b, per int32 lane (exact:
// the bytes are nibbles and activations of at most 127)
static inline __m256i add_byte_products(__m256i acc, __m256i a, __m256i b) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(acc, a, b);
#elif defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(acc, a, b);
#else
    const __m256i pairs = _mm256_maddubs_epi16(a, b);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
#endif
}

// The order in which the kernel's 8 float lanes hold the 8 rows: as they are where 512-bit
// registers hold them all; otherwise what vphaddd leaves of two halves (its own inverse).
#ifdef WIDE
#define ROW_ORDER _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
#else
#define ROW_ORDER _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7)
#endif

// What a block gives every column: per pair of runs p, the two runs' scales as int16 pairs,
// each row in two int32 lanes as the products' lanes lie (rows 0-7 in 512 bits, or rows 0-3
// and 4-7 in two 256-bit halves), and the minimums as int16 pairs in ROW_ORDER; the rows' d and
// dmin as floats in ROW_ORDER.
struct decoded {
#ifdef WIDE
    __m512i scales[4];
#else
    __m256i scales[4][2];
#endif
    __m256i mins[4];
    __m256 d, dmin;
};

// The scales and minimums of a pair of runs, unpacked as ggml does (repack.cpp: its utmp words
// 0-3 are the 8 rows' scales, then their minimums, a byte each), both runs at once: the low run
// in the first 128 bits, the high run in the second.
static inline __m256i pair_scales(const uint8_t *packed) {
    const __m256i v = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(packed + 12)),
                                       _mm_loadu_si128((const __m128i *)packed));
    const __m256i kmask1 = _mm256_set1_epi32(0x3f3f3f3f), kmask2 = _mm256_set1_epi32(0x0f0f0f0f);
    const __m256i kmask3 = _mm256_set1_epi32(0x03030303);
    const __m256i words01 = _mm256_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0));  // u0 u0 u1 u1
    const __m256i word2 = _mm256_shuffle_epi32(v, _MM_SHUFFLE(2, 2, 2, 2));
    // words 0 and 2: u0 & kmask1, u1 & kmask1
    const __m256i even = _mm256_and_si256(words01, kmask1);
    // words 1 and 3: (u2 & kmask2) | ((u0 >> 6) & kmask3) << 4, ((u2 >> 4) & kmask2) | ((u1 >> 6) & kmask3) << 4
    const __m256i odd = _mm256_or_si256(
        _mm256_and_si256(_mm256_srlv_epi32(word2, _mm256_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4)), kmask2),
        _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(words01, 6), kmask3), 4));
    return _mm256_blend_epi32(even, odd, 0xAA);
}

static inline void decode(const block_q4_Kx8 *b, struct decoded *out) {
    // the low and the high run's bytes of each row side by side: scales, then minimums
    const __m256i pairs = _mm256_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15,
                                           0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    for (int p = 0; p < 4; p++) {
        const __m256i both = _mm256_permute4x64_epi64(pair_scales(b->scales + 24 * p), _MM_SHUFFLE(3, 1, 2, 0));
        const __m256i side_by_side = _mm256_shuffle_epi8(both, pairs);
        // per row r, int32 lane r: the low run's byte, then the high run's, as int16
        const __m256i scales = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(side_by_side));
        const __m256i mins = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(side_by_side, 1));
#ifdef WIDE
        const __m512i twice = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        out->scales[p] = _mm512_permutexvar_epi32(twice, _mm512_castsi256_si512(scales));
#else
        out->scales[p][0] = _mm256_permutevar8x32_epi32(scales, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
        out->scales[p][1] = _mm256_permutevar8x32_epi32(scales, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7));
#endif
        out->mins[p] = _mm256_permutevar8x32_epi32(mins, ROW_ORDER);
    }
    out->d = _mm256_permutevar8x32_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b->d)), ROW_ORDER);
    out->dmin = _mm256_permutevar8x32_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b->dmin)), ROW_ORDER);
}

// The integer sums of pair p of runs of a block (qs: the pair's 256 bytes) with cols columns of
// x (a constant where inlined, at most GROUP): per column, each row's low-run products times its
// scale plus its high-run products times that scale, in ROW_ORDER. Each product lane sums 16
// byte products, so it fits the int16 that the scales multiply.
static inline __attribute__((always_inline)) void pair_products(
    const uint8_t *qs, const struct decoded *dec, int p, const block_q8_K *const *x, int b,
    int cols, __m256i *pair) {
#ifdef WIDE
    const __m512i nibble = _mm512_set1_epi8(0x0F);
    __m512i low[GROUP], high[GROUP];
    for (int j = 0; j < cols; j++) low[j] = high[j] = _mm512_setzero_si512();
    for (int t = 0; t < 4; t++) {
        // bytes 8t..8t+7 of the pair's 32 in each of the 8 rows
        const __m512i raw = _mm512_loadu_si512(qs + 64 * t);
        const __m512i lo = _mm512_and_si512(raw, nibble);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), nibble);
        for (int j = 0; j < cols; j++) {
            int64_t a, c;
            memcpy(&a, x[j][b].qs + 64 * p + 8 * t, 8);
            memcpy(&c, x[j][b].qs + 64 * p + 32 + 8 * t, 8);
            low[j] = _mm512_dpbusd_epi32(low[j], lo, _mm512_set1_epi64(a));
            high[j] = _mm512_dpbusd_epi32(high[j], hi, _mm512_set1_epi64(c));
        }
    }
    for (int j = 0; j < cols; j++) {
        const __m512i both = _mm512_mask_blend_epi16(0xAAAAAAAA, low[j], _mm512_slli_epi32(high[j], 16));
        const __m512i lanes = _mm512_madd_epi16(both, dec->scales[p]);
        // each row's two lanes summed in the low half of its 64 bits, then those halves
        pair[j] = _mm512_cvtepi64_epi32(_mm512_add_epi32(lanes, _mm512_srli_epi64(lanes, 32)));
    }
#else
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    __m256i low[GROUP][2], high[GROUP][2];
    for (int j = 0; j < cols; j++) low[j][0] = low[j][1] = high[j][0] = high[j][1] = _mm256_setzero_si256();
    for (int t = 0; t < 4; t++) {
        // bytes 8t..8t+7 of the pair's 32 in each row: rows 0-3, then rows 4-7
        __m256i lo[2], hi[2];
        for (int h = 0; h < 2; h++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 64 * t + 32 * h));
            lo[h] = _mm256_and_si256(raw, nibble);
            hi[h] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nibble);
        }
        for (int j = 0; j < cols; j++) {
            int64_t a, c;
            memcpy(&a, x[j][b].qs + 64 * p + 8 * t, 8);
            memcpy(&c, x[j][b].qs + 64 * p + 32 + 8 * t, 8);
            const __m256i xa = _mm256_set1_epi64x(a), xc = _mm256_set1_epi64x(c);
            for (int h = 0; h < 2; h++) {
                low[j][h] = add_byte_products(low[j][h], lo[h], xa);
                high[j][h] = add_byte_products(high[j][h], hi[h], xc);
            }
        }
    }
    for (int j = 0; j < cols; j++) {
        __m256i rows[2];
        for (int h = 0; h < 2; h++) {
            const __m256i both = _mm256_blend_epi16(low[j][h], _mm256_slli_epi32(high[j][h], 16), 0xAA);
            rows[h] = _mm256_madd_epi16(both, dec->scales[p][h]);
        }
        pair[j] = _mm256_hadd_epi32(rows[0], rows[1]);
    }
#endif
}

// The weights stream from memory faster when asked for a few blocks ahead (as for Q6_K)
#define PREFETCH_BLOCKS 2

static inline void prefetch_block(const block_q4_Kx8 *b) {
    for (size_t line = 0; line < sizeof *b; line += 64) _mm_prefetch((const char *)b + line, _MM_HINT_T0);
}

// The products of pair p of runs of block b (decoded in dec) with cols columns of x (a constant
// where inlined, at most GROUP): per pair as gemm does (per_pair), or gathered in sums for the
// block's end as gemv does.
static inline __attribute__((always_inline)) void pair_by_columns(
    const block_q4_Kx8 *block, const struct decoded *dec, int p, const block_q8_K *const *x,
    const int32_t (*run_sums)[4], int b, int cols, int per_pair, const __m256 *dx,
    const __m256 *dmin_x, __m256 *acc, __m256 *acc_min, __m256i *sums, __m256i *min_sums) {
    __m256i pair[GROUP];
    pair_products(block->qs + 256 * p, dec, p, x, b, cols, pair);
    for (int j = 0; j < cols; j++) {
        const __m256i mins = _mm256_madd_epi16(dec->mins[p], _mm256_set1_epi32(run_sums[j][p]));
        if (per_pair) {
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pair[j]), dx[j], acc[j]);
            acc_min[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), dmin_x[j], acc_min[j]);
        } else {
            sums[j] = _mm256_add_epi32(sums[j], pair[j]);
            min_sums[j] = _mm256_add_epi32(min_sums[j], mins);
        }
    }
}

#define MOST_COLUMNS 8  // columns a pass over the weights takes (two of gemm's groups)

// Row groups [first, last) (8 rows each) times cols columns (a constant where inlined, at most
// MOST_COLUMNS): the columns of whole groups of 4 as gemm computes them, the rest as gemv does.
// Each block is decoded once for all of them.
static inline __attribute__((always_inline)) void groups_by_columns(
    const block_q4_Kx8 *w, int64_t first, int64_t last, const block_q8_K *const *x, int cols,
    int blocks, char *out, size_t out_col) {
    const int gemm_cols = cols / GROUP * GROUP;
    struct decoded dec;
    for (int64_t g = first; g < last; g++) {
        const block_q4_Kx8 *group = w + g * blocks;
        __m256 acc[MOST_COLUMNS], acc_min[MOST_COLUMNS];
        for (int j = 0; j < cols; j++) acc[j] = acc_min[j] = _mm256_setzero_ps();
        for (int b = 0; b < blocks; b++) {
            const block_q4_Kx8 *block = group + b;
            prefetch_block(block + PREFETCH_BLOCKS);
            decode(block, &dec);
            __m256 dx[MOST_COLUMNS], dmin_x[MOST_COLUMNS];
            __m256i sums[MOST_COLUMNS], min_sums[MOST_COLUMNS];
            int32_t run_sums[MOST_COLUMNS][4];  // per pair of runs, the activations' sums of each
            for (int j = 0; j < cols; j++) {
                const __m256 d = _mm256_set1_ps(x[j][b].d);
                dx[j] = _mm256_mul_ps(dec.d, d);
                dmin_x[j] = _mm256_mul_ps(dec.dmin, d);
                sums[j] = min_sums[j] = _mm256_setzero_si256();
                // the sums of 16 added in pairs: each run's sum of 32, as int16 (within 32 * 127)
                const __m256i bsums = _mm256_loadu_si256((const __m256i *)x[j][b].bsums);
                _mm_storeu_si128((__m128i *)run_sums[j],
                                 _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1)));
            }
            for (int p = 0; p < 4; p++) {
                // two calls, not a loop, so that each one's width is a constant
                pair_by_columns(block, &dec, p, x, run_sums, b, cols < GROUP ? cols : GROUP,
                                gemm_cols > 0, dx, dmin_x, acc, acc_min, sums, min_sums);
                if (cols > GROUP) {
                    const int j = GROUP;
                    pair_by_columns(block, &dec, p, x + j, run_sums + j, b, cols - j, gemm_cols > j,
                                    dx + j, dmin_x + j, acc + j, acc_min + j, sums + j, min_sums + j);
                }
            }
            for (int j = gemm_cols; j < cols; j++) {
                acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[j]), dx[j], acc[j]);
                acc_min[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(min_sums[j]), dmin_x[j], acc_min[j]);
            }
        }
        for (int j = 0; j < cols; j++) {
            const __m256 rows = _mm256_permutevar8x32_ps(_mm256_sub_ps(acc[j], acc_min[j]), ROW_ORDER);
            _mm256_storeu_ps((float *)(out + j * out_col) + 8 * g, rows);
        }
    }
}

void ollamakit_mul_mat_q4_k(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)userdata;
    const struct tensor *w = dst->src[0], *x = dst->src[1];
    const int blocks = (int)(w->ne[0] / QK_K);
    const int64_t cols = x->ne[1];
    int64_t first, last;
    thread_rows(w->ne[1] / 8, 1, ith, nth, &first, &last);
    // passes of up to 8 columns, each starting at a multiple of 4: gemm's groups stay whole
    for (int64_t col = 0; col < cols; col += MOST_COLUMNS) {
        const int width = cols - col < MOST_COLUMNS ? (int)(cols - col) : MOST_COLUMNS;
        const block_q8_K *xs[MOST_COLUMNS];
        for (int j = 0; j < width; j++) {
            xs[j] = (const block_q8_K *)((const char *)x->data + (col + j) * x->nb[1]);
        }
        char *out = (char *)dst->data + col * dst->nb[1];
        const block_q4_Kx8 *wd = w->data;
        const size_t on = dst->nb[1];
        switch (width) {
        case 1: groups_by_columns(wd, first, last, xs, 1, blocks, out, on); break;
        case 2: groups_by_columns(wd, first, last, xs, 2, blocks, out, on); break;
        case 3: groups_by_columns(wd, first, last, xs, 3, blocks, out, on); break;
        case 4: groups_by_columns(wd, first, last, xs, 4, blocks, out, on); break;
        case 5: groups_by_columns(wd, first, last, xs, 5, blocks, out, on); break;
        case 6: groups_by_columns(wd, first, last, xs, 6, blocks, out, on); break;
        case 7: groups_by_columns(wd, first, last, xs, 7, blocks, out, on); break;
        default: groups_by_columns(wd, first, last, xs, 8, blocks, out, on); break;
        }
    }
}

#else  // other CPUs: ggml's own products

void ollamakit_mul_mat_q4_k(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)dst, (void)ith, (void)nth, (void)userdata;
}

#endif

// ollamakit's own kernels, run by ggml's threads as custom operations: the Q4_1 and Q5_1
// products below, and the float32 product, GELU and attention of the BERT encoders after them.
//
// Products ggml computes one activation column at a time, computed several columns at a time.
//
// ggml multiplies a Q4_1 (Q5_1) matrix by Q8_1 activations with ggml_vec_dot_q4_1_q8_1
// (ggml_vec_dot_q5_1_q8_1), one call per (row, column): each call unpacks the row's values and
// scales again. The kernels below do the same arithmetic for a tile of rows and columns,
// unpacking each weight block once for all the tile's columns. Every output is computed with
// exactly the operations of ggml's x86 vec_dot, in the same order: per block, integer sums of
// four products in each of 8 lanes, a fused multiply-add of the two scales' product into each
// lane, the min times the activations' sum fused into a scalar; then ggml's horizontal sum plus
// that scalar. So each output is ggml's bit for bit (checked at load time and by the tests),
// only sooner. The two types differ only in the values: Q5_1 adds a fifth bit from its qh word.
//
// Built by `ollamakit build-ggml` for this CPU, beside ggml. Called by ggml as a custom operation
// (ggml_custom_4d): dst = weight (src[0], Q4_1 or Q5_1) times activations (src[1], Q8_1),
// float32.

#include "kernels.h"

#include <string.h>

size_t ollamakit_tensor_size(void) { return sizeof(struct tensor); }

#ifdef OLLAMAKIT_KERNELS

typedef struct { uint16_t d, m; uint8_t qs[16]; } block_q4_1;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } block_q5_1;
typedef struct { uint16_t d, s; int8_t qs[32]; } block_q8_1;

int ollamakit_kernels_supported(void) { return 1; }

// 8 lanes, each the sum of four adjacent products of unsigned x and signed y bytes (exact)
static inline __m256 lane_sums(__m256i x, const int8_t *qy) {
    const __m256i y = _mm256_loadu_si256((const __m256i *)qy);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    const __m256i sums = _mm256_dpbusd_epi32(_mm256_setzero_si256(), x, y);
#else
    const __m256i sums = _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
#endif
    return _mm256_cvtepi32_ps(sums);
}

// A Q5_1 block's 32 values, 0..31: the nibbles, and bit i of qh as 16 added to value i (ggml's
// bytes_from_bits_32, masked to 0x10)
static inline __m256i five_bit_values(const block_q5_1 *b) {
    uint32_t qh;
    memcpy(&qh, b->qh, sizeof qh);
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)qh), _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                                      0x0101010101010101, 0x0000000000000000));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i high = _mm256_and_si256(
        _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(nibbles(b->qs), high);
}

// rows x cols outputs of weights with `bits` bits a value (4: Q4_1, 5: Q5_1); rows, cols and
// bits are constants where it is inlined, so the tile stays in registers
static inline __attribute__((always_inline)) void tile(
    const char *w, size_t w_row, const char *x, size_t x_col, char *out, size_t out_col,
    int blocks, int rows, int cols, int bits) {
    __m256 acc[2][4];
    float summs[2][4];
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
            acc[i][j] = _mm256_setzero_ps();
            summs[i][j] = 0.0f;
        }
    }
    for (int b = 0; b < blocks; b++) {
        for (int i = 0; i < rows; i++) {
            float d, m;
            __m256i qx;
            if (bits == 5) {
                const block_q5_1 *wb = (const block_q5_1 *)(w + i * w_row) + b;
                d = half(wb->d), m = half(wb->m), qx = five_bit_values(wb);
            } else {
                const block_q4_1 *wb = (const block_q4_1 *)(w + i * w_row) + b;
                d = half(wb->d), m = half(wb->m), qx = nibbles(wb->qs);
            }
            for (int j = 0; j < cols; j++) {
                const block_q8_1 *xb = (const block_q8_1 *)(x + j * x_col) + b;
                summs[i][j] = __builtin_fmaf(m, half(xb->s), summs[i][j]);
                const __m256 scale = _mm256_set1_ps(d * half(xb->d));
                acc[i][j] = _mm256_fmadd_ps(scale, lane_sums(qx, xb->qs), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
            ((float *)(out + j * out_col))[i] = hsum8(acc[i][j]) + summs[i][j];
        }
    }
}

#define TILE_ROWS 2
#define TILE_COLS 4

static inline __attribute__((always_inline)) void mul_mat(struct tensor *dst, int ith, int nth,
                                                          int bits) {
    const struct tensor *w = dst->src[0], *x = dst->src[1];
    const int blocks = (int)(w->ne[0] / 32);
    const int64_t n = w->ne[1], cols = x->ne[1];
    // each thread takes a run of rows (whole tiles) for every column
    int64_t first, last;
    thread_rows(n, TILE_ROWS, ith, nth, &first, &last);
    for (int64_t c = 0; c < cols; c += TILE_COLS) {
        const int width = cols - c < TILE_COLS ? (int)(cols - c) : TILE_COLS;
        const char *xc = (const char *)x->data + c * x->nb[1];
        char *oc = (char *)dst->data + c * dst->nb[1];
        for (int64_t r = first; r < last; r += TILE_ROWS) {
            const char *wr = (const char *)w->data + r * w->nb[1];
            char *o = oc + r * sizeof(float);
            if (last - r >= TILE_ROWS && width == TILE_COLS) {
                tile(wr, w->nb[1], xc, x->nb[1], o, dst->nb[1], blocks, TILE_ROWS, TILE_COLS,
                     bits);
            } else {
                const int height = last - r < TILE_ROWS ? (int)(last - r) : TILE_ROWS;
                for (int i = 0; i < height; i++) {
                    for (int j = 0; j < width; j++) {
                        tile(wr + i * w->nb[1], w->nb[1], xc + j * x->nb[1], x->nb[1],
                             o + i * sizeof(float) + j * dst->nb[1], dst->nb[1], blocks, 1, 1,
                             bits);
                    }
                }
            }
        }
    }
}

void ollamakit_mul_mat_q4_1(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)userdata;
    mul_mat(dst, ith, nth, 4);
}

void ollamakit_mul_mat_q5_1(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)userdata;
    mul_mat(dst, ith, nth, 5);
}

#else  // other CPUs: ggml's own products (their vec_dot sums in another order)

int ollamakit_kernels_supported(void) { return 0; }

void ollamakit_mul_mat_q4_1(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)dst, (void)ith, (void)nth, (void)userdata;
}

void ollamakit_mul_mat_q5_1(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)dst, (void)ith, (void)nth, (void)userdata;
}

#endif

// Float32 products for the encoders (BERT), whose weights stay float32 so that their answers are
// float32's: ggml's own float32 product (llamafile's tinyBLAS) keeps a vector of partial sums per
// output along the shared dimension and adds it up at the end, and reads both operands unpacked.
// Here the weight is packed once at load into panels of 32 rows, each panel stored column by
// column (k, then the 32 rows), so that a tile of 32 rows by 12 activation columns is a run of
// outer products: two vector loads of the panel and a broadcast of each column's value per step
// of k, 24 fused multiply-adds into registers, and no horizontal sums. Each output is the sum
// over k in order, with one rounding per step (a fused multiply-add), as a float32 product is.
//
// dst (rows, cols) = weight (src[0]: the panel layout, ne = (32, k, rows / 32)) times
// activations (src[1]: float32, ne = (k, cols), packed).

#if defined(__AVX512F__)
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>

#define PANEL 32  // weight rows per panel: two 16-float vectors
#define TILE 12   // activation columns per tile: 24 accumulators of the 32 registers
#define BLOCK 48  // activation columns per block, kept in L2 while every panel passes

int ollamakit_f32_supported(void) { return 1; }

static inline __attribute__((always_inline)) void f32_tile(
    const float *w, const float *x, int64_t x_col, float *out, int64_t out_col, int64_t k,
    int cols) {
    __m512 acc[TILE][2];
    for (int j = 0; j < cols; j++) {
        acc[j][0] = _mm512_setzero_ps();
        acc[j][1] = _mm512_setzero_ps();
    }
    for (int64_t i = 0; i < k; i++) {
        const __m512 w0 = _mm512_loadu_ps(w + i * PANEL);
        const __m512 w1 = _mm512_loadu_ps(w + i * PANEL + 16);
        for (int j = 0; j < cols; j++) {
            const __m512 b = _mm512_set1_ps(x[j * x_col + i]);
            acc[j][0] = _mm512_fmadd_ps(w0, b, acc[j][0]);
            acc[j][1] = _mm512_fmadd_ps(w1, b, acc[j][1]);
        }
    }
    for (int j = 0; j < cols; j++) {
        _mm512_storeu_ps(out + j * out_col, acc[j][0]);
        _mm512_storeu_ps(out + j * out_col + 16, acc[j][1]);
    }
}

void ollamakit_mul_mat_f32(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)userdata;
    const struct tensor *w = dst->src[0], *x = dst->src[1];
    const int64_t k = w->ne[1], panels = w->ne[2], cols = x->ne[1];
    const int64_t x_col = (int64_t)(x->nb[1] / sizeof(float));
    const int64_t out_col = (int64_t)(dst->nb[1] / sizeof(float));
    // each thread takes a run of whole tiles of columns, for every row
    const int64_t tiles = (cols + TILE - 1) / TILE;
    const int64_t per = (tiles + nth - 1) / nth;
    const int64_t first = ith * per * TILE;
    const int64_t last = first + per * TILE < cols ? first + per * TILE : cols;
    for (int64_t block = first; block < last; block += BLOCK) {
        const int64_t end = block + BLOCK < last ? block + BLOCK : last;
        for (int64_t p = 0; p < panels; p++) {
            const float *panel = (const float *)w->data + p * k * PANEL;
            for (int64_t c = block; c < end; c += TILE) {
                const float *xc = (const float *)x->data + c * x_col;
                float *o = (float *)dst->data + c * out_col + p * PANEL;
                if (end - c >= TILE) {
                    f32_tile(panel, xc, x_col, o, out_col, k, TILE);
                } else {
                    for (int64_t j = c; j < end; j++) {
                        f32_tile(panel, xc + (j - c) * x_col, x_col, o + (j - c) * out_col,
                                 out_col, k, 1);
                    }
                }
            }
        }
    }
}

// lanes [0, count) of 16
static inline __mmask16 first_lanes(int64_t count) {
    return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? 0 : (__mmask16)((1u << count) - 1);
}

// e^x for x <= 0, to about 2 ulp: x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, so
// n ln2 is exact enough), e^r by its Taylor series to degree 7, times 2^n. Below -87 the result
// would leave float32's normal range (slow to multiply), so x stops there.
static inline __m512 exp_neg(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

// Exact GELU, x Phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2, as transformers' BERT computes
// it, 16 values at a time (ggml's gelu_erf calls the C library's erff one value at a time).
// erf by Abramowitz and Stegun 7.1.26, within 1.5e-7 of it: below float32's rounding of the
// activations. dst = GELU(src[0]), both float32 and packed.
void ollamakit_gelu_erf(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)userdata;
    const struct tensor *x = dst->src[0];
    const int64_t n = x->ne[0] * x->ne[1] * x->ne[2] * x->ne[3];
    const int64_t per = ((n + 15) / 16 + nth - 1) / nth * 16;
    const int64_t first = ith * per, last = first + per < n ? first + per : n;
    const float *in = (const float *)x->data;
    float *out = (float *)dst->data;
    for (int64_t i = first; i < last; i += 16) {
        const __mmask16 lanes = first_lanes(last - i);
        const __m512 v = _mm512_maskz_loadu_ps(lanes, in + i);
        __m512 z = _mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f));
        // beyond |z| = 9, erf is +-1 in float32
        z = _mm512_min_ps(_mm512_max_ps(z, _mm512_set1_ps(-9.0f)), _mm512_set1_ps(9.0f));
        const __m512 t = _mm512_div_ps(
            _mm512_set1_ps(1.0f),
            _mm512_fmadd_ps(_mm512_abs_ps(z), _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f)));
        __m512 poly = _mm512_set1_ps(1.061405429f);
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453152027f));
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421413741f));
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284496736f));
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254829592f));
        poly = _mm512_mul_ps(poly, t);
        // (1 - erf|z|) / 2, then Phi: 1 minus it for z >= 0, itself below
        const __m512 tail = _mm512_mul_ps(
            _mm512_mul_ps(poly, _mm512_set1_ps(0.5f)),
            exp_neg(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z))));
        const __mmask16 positive = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GE_OQ);
        const __m512 phi = _mm512_mask_sub_ps(tail, positive, _mm512_set1_ps(1.0f), tail);
        _mm512_mask_storeu_ps(out + i, lanes, _mm512_mul_ps(v, phi));
    }
}

// Bidirectional attention of the encoders, for inputs of any lengths without padding. Input i's
// queries are rows [s[0], s[0] + s[1]) of src[0] and its keys and values rows [s[2], s[2] + s[3])
// of src[1] and src[2], where s is row i of src[3] (int32, ne = (4, inputs)); each row holds the
// heads one after another (userdata: the head count; a head's width a multiple of 16). dst row r
// is query row r's softmax(q k / sqrt(width)) v, every head. For each input and head, the keys
// are laid out transposed once, so that a query's scores come 16 keys at a time by fused
// multiply-adds, the softmax runs over the input's own keys only, and the values are summed by
// fused multiply-adds of each key's probability.
void ollamakit_attention_f32(struct tensor *dst, int ith, int nth, void *userdata) {
    const int64_t heads = (int64_t)(intptr_t)userdata;
    const struct tensor *q = dst->src[0], *k = dst->src[1], *v = dst->src[2], *spans = dst->src[3];
    const int64_t width = dst->ne[0] / heads, inputs = spans->ne[1];
    const int32_t *span = (const int32_t *)spans->data;
    int64_t longest = 0;
    for (int64_t i = 0; i < inputs; i++) {
        longest = span[4 * i + 3] > longest ? span[4 * i + 3] : longest;
    }
    const int64_t most_keys = (longest + 15) / 16 * 16;
    float *keys = aligned_alloc(64, (size_t)(width + 1) * most_keys * sizeof(float));
    if (keys == NULL) {
        return;  // the step then holds garbage; allocation of a few KiB does not fail in practice
    }
    float *scores = keys + width * most_keys;
    const float scale = 1.0f / sqrtf((float)width);
    for (int64_t task = ith; task < inputs * heads; task += nth) {
        const int32_t *s = span + 4 * (task / heads);
        const int64_t offset = (task % heads) * width;
        const int64_t n = s[3], padded = (n + 15) / 16 * 16;  // keys, and rounded up
        for (int64_t j = 0; j < padded; j++) {
            const float *row =
                j < n ? (const float *)((const char *)k->data + (s[2] + j) * k->nb[1]) + offset
                      : NULL;
            for (int64_t c = 0; c < width; c++) {
                keys[c * padded + j] = row ? row[c] : 0.0f;
            }
        }
        for (int64_t i = 0; i < s[1]; i++) {
            const float *qi =
                (const float *)((const char *)q->data + (s[0] + i) * q->nb[1]) + offset;
            __m512 top = _mm512_set1_ps(-INFINITY);
            for (int64_t j = 0; j < padded; j += 16) {
                __m512 acc = _mm512_setzero_ps();
                for (int64_t c = 0; c < width; c++) {
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(qi[c]),
                                          _mm512_load_ps(keys + c * padded + j), acc);
                }
                acc = _mm512_mul_ps(acc, _mm512_set1_ps(scale));
                top = _mm512_mask_max_ps(top, first_lanes(n - j), top, acc);
                _mm512_store_ps(scores + j, acc);
            }
            const __m512 most = _mm512_set1_ps(_mm512_reduce_max_ps(top));
            __m512 total = _mm512_setzero_ps();
            for (int64_t j = 0; j < padded; j += 16) {
                const __m512 e = _mm512_maskz_mov_ps(
                    first_lanes(n - j), exp_neg(_mm512_sub_ps(_mm512_load_ps(scores + j), most)));
                total = _mm512_add_ps(total, e);
                _mm512_store_ps(scores + j, e);
            }
            const __m512 inverse = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(total));
            float *out = (float *)((char *)dst->data + (s[0] + i) * dst->nb[1]) + offset;
            for (int64_t c = 0; c < width; c += 16) {
                __m512 acc = _mm512_setzero_ps();
                for (int64_t j = 0; j < n; j++) {
                    const float *vj =
                        (const float *)((const char *)v->data + (s[2] + j) * v->nb[1]) + offset;
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(scores[j]), _mm512_loadu_ps(vj + c), acc);
                }
                _mm512_storeu_ps(out + c, _mm512_mul_ps(acc, inverse));
            }
        }
    }
    free(keys);
}

#else  // without AVX-512: ggml's own float32 product, GELU and attention

int ollamakit_f32_supported(void) { return 0; }

void ollamakit_mul_mat_f32(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)dst, (void)ith, (void)nth, (void)userdata;
}

void ollamakit_gelu_erf(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)dst, (void)ith, (void)nth, (void)userdata;
}

void ollamakit_attention_f32(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)dst, (void)ith, (void)nth, (void)userdata;
}

#endif

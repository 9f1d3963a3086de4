// Products ggml computes one activation column at a time, computed several columns at a time.
//
// ggml multiplies a Q4_1 matrix by Q8_1 activations with ggml_vec_dot_q4_1_q8_1, one call per
// (row, column): each call unpacks the row's nibbles and scales again. The kernel below does the
// same arithmetic for a tile of rows and columns, unpacking each weight block once for all the
// tile's columns. Every output is computed with exactly the operations of ggml's x86 vec_dot, in
// the same order: per block, integer sums of four products in each of 8 lanes, a fused
// multiply-add of the two scales' product into each lane, the min times the activations' sum
// fused into a scalar; then ggml's horizontal sum plus that scalar. So each output is ggml's bit
// for bit (checked at load time and by the tests), only sooner.
//
// Built by `ollamakit build-ggml` for this CPU, beside ggml. Called by ggml as a custom operation
// (ggml_custom_4d): dst = weight (src[0], Q4_1) times activations (src[1], Q8_1), float32.

#include "kernels.h"

size_t ollamakit_tensor_size(void) { return sizeof(struct tensor); }

#ifdef OLLAMAKIT_KERNELS

typedef struct { uint16_t d, m; uint8_t qs[16]; } block_q4_1;
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

// rows x cols outputs; rows and cols are constants where it is inlined, so the tile stays in
// registers
static inline __attribute__((always_inline)) void tile(
    const char *w, size_t w_row, const char *x, size_t x_col, char *out, size_t out_col,
    int blocks, int rows, int cols) {
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
            const block_q4_1 *wb = (const block_q4_1 *)(w + i * w_row) + b;
            const float d = half(wb->d), m = half(wb->m);
            const __m256i qx = nibbles(wb->qs);
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

void ollamakit_mul_mat_q4_1(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)userdata;
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
                tile(wr, w->nb[1], xc, x->nb[1], o, dst->nb[1], blocks, TILE_ROWS, TILE_COLS);
            } else {
                const int height = last - r < TILE_ROWS ? (int)(last - r) : TILE_ROWS;
                for (int i = 0; i < height; i++) {
                    for (int j = 0; j < width; j++) {
                        tile(wr + i * w->nb[1], w->nb[1], xc + j * x->nb[1], x->nb[1],
                             o + i * sizeof(float) + j * dst->nb[1], dst->nb[1], blocks, 1, 1);
                    }
                }
            }
        }
    }
}

#else  // other CPUs: ggml's own products (their vec_dot sums in another order)

int ollamakit_kernels_supported(void) { return 0; }

void ollamakit_mul_mat_q4_1(struct tensor *dst, int ith, int nth, void *userdata) {
    (void)dst, (void)ith, (void)nth, (void)userdata;
}

#endif

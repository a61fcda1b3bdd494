// im2col's stride-2 row copy, out[k] = src[2 k], with AVX2 (float32).
// No standard-library templates here (this file is compiled with -mavx2 -mfma).
#include <immintrin.h>

#include "conv/conv.h"

namespace rb {

void copy_even_avx2(const float* src, float* out, int64_t n) {
  int64_t k = 0;
  // Eight outputs from 16 loaded floats; the loop stops while at least one output is left, so the
  // last load ends at src[2 (n - 1) - 1] at most and never reads past the last element used.
  for (; k + 8 < n; k += 8) {
    const __m256 lo = _mm256_loadu_ps(src + 2 * k), hi = _mm256_loadu_ps(src + 2 * k + 8);
    // Per 128-bit lane: lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6; then 64-bit pairs in order 0 2 1 3.
    const __m256 even = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    _mm256_storeu_ps(out + k, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0))));
  }
  for (; k < n; ++k) out[k] = src[2 * k];
}

}  // namespace rb

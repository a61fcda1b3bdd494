// The fused Adam step (see adam.h): threads and the choice between the AVX2 loop (adam_avx2.cpp)
// and the scalar one (adam_ref.cpp).
#include "optim/adam.h"

#include <omp.h>

#include <type_traits>

#include "common/parallel.h"
#include "dispatch/dispatch.h"

namespace rb {

template <typename T>
void adam_update(int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq,
                 const AdamScalars& s) {
  // Memory-bound: threads only for parameters large enough to be worth a fork; each takes a range.
  const int team = n > (int64_t(1) << 18) ? available_threads() : 1;
  const bool avx2 = std::is_same_v<T, float> && active_isa() == Isa::avx2;
#pragma omp parallel num_threads(team) if (team > 1)
  {
    const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
    const int64_t i0 = n * t / threads, count = n * (t + 1) / threads - i0;
    T* max_part = max_exp_avg_sq ? max_exp_avg_sq + i0 : nullptr;
    if constexpr (std::is_same_v<T, float>) {
      if (avx2) adam_update_avx2(count, param + i0, grad + i0, exp_avg + i0, exp_avg_sq + i0, max_part, s);
    }
    if (!avx2) adam_update_ref(count, param + i0, grad + i0, exp_avg + i0, exp_avg_sq + i0, max_part, s);
  }
  record_impl("adam_update", avx2 ? "avx2" : "scalar_ref");
}

#define RB_ADAM_INSTANTIATE(T)                                                                            \
  template void adam_update<T>(int64_t, T*, const T*, T*, T*, T*, const AdamScalars&);
RB_ADAM_INSTANTIATE(float)
RB_ADAM_INSTANTIATE(double)
#undef RB_ADAM_INSTANTIATE

}  // namespace rb

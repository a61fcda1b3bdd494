// Thread control. Every kernel parallelises with OpenMP; these set the team size.
#pragma once
#include <omp.h>

#include <cstdint>

namespace rb {

int get_num_threads();
void set_num_threads(int n);  // n >= 1
// The largest team a caller may ask for: far above any machine's cores, and far below the thread count
// at which creating the team fails (libgomp then kills the process: a segfault or exit(1)).
constexpr int64_t kMaxThreads = 1024;
// A ValueError naming the op unless 1 <= n <= kMaxThreads.
void check_thread_count(const char* op, int64_t n);
// Threads a kernel may use right now: 1 when already inside a parallel region
// (a conv or rnn kernel calling the GEMM from its own worker threads), at most OMP_THREAD_LIMIT.
// Kernels that split work by thread number (run_team, the recurrences' barriers) need exactly the
// team they ask for, so this also turns off OpenMP's dynamic adjustment (OMP_DYNAMIC) for the
// calling thread: with fewer threads than planned, a static split left part of C unwritten and a
// barrier waited forever.
int available_threads();

// body(tid) on each thread of a team of `team`. A team of one runs on the calling thread without
// entering OpenMP: a parallel region costs about a microsecond even for a single thread, and a
// recurrence's per-step products make thousands of calls from inside its own team.
template <typename Body>
void run_team(int team, Body&& body) {
  if (team <= 1) {
    body(0);
    return;
  }
#pragma omp parallel num_threads(team)
  body(omp_get_thread_num());
}

// body(i) for i in [0, n), split statically over a team of `team` (one: the calling thread alone).
template <typename Body>
void parallel_for(int team, int64_t n, Body&& body) {
  if (team <= 1 || n <= 1) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(team)
  for (int64_t i = 0; i < n; ++i) body(i);
}

}  // namespace rb

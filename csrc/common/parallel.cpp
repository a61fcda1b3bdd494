#include "common/parallel.h"

#include <omp.h>

#include "common/check.h"

namespace rb {

int get_num_threads() { return omp_get_max_threads(); }

void check_thread_count(const char* op, int64_t n) {
  if (n < 1 || n > kMaxThreads) value_error(op, ": the number of threads must be in [1, ", kMaxThreads, "], got ", n);
}

void set_num_threads(int n) { omp_set_num_threads(n < 1 ? 1 : n); }

int available_threads() {
  if (omp_in_parallel()) return 1;
  omp_set_dynamic(0);
  const int wanted = omp_get_max_threads(), limit = omp_get_thread_limit();
  return wanted < limit ? wanted : limit;
}

}  // namespace rb

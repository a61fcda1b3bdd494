#include "common/parallel.h"

#include <omp.h>

namespace rb {

int get_num_threads() { return omp_get_max_threads(); }

void set_num_threads(int n) { omp_set_num_threads(n < 1 ? 1 : n); }

int available_threads() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

}  // namespace rb

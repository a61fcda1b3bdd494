// Thread control. Every kernel parallelises with OpenMP; these set the team size.
#pragma once

namespace rb {

int get_num_threads();
void set_num_threads(int n);  // n >= 1
// Threads a kernel may use right now: 1 when already inside a parallel region
// (a conv or rnn kernel calling the GEMM from its own worker threads).
int available_threads();

}  // namespace rb

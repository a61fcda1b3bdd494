// Keeping freed memory in the process (malloc_tuning.cpp explains why).
#pragma once

namespace rb {

// Raises glibc malloc's mmap and trim thresholds unless the user set them; true if it did.
bool tune_malloc();

}  // namespace rb

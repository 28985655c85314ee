// OpenBLAS's CBLAS interface (Debian: libopenblas-dev). Used on Linux only; macOS uses Accelerate.
#include <cblas.h>
// glibc's mallopt, for the allocator settings of Tensor's `Memory.configure` (Linux only, like this module).
#include <malloc.h>

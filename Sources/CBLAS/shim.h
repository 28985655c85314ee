// OpenBLAS's CBLAS interface (Debian: libopenblas-dev). Used on Linux only; macOS uses Accelerate.
#include <cblas.h>

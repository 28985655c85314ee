#if !canImport(Accelerate)
import CBLAS
#endif

/// Process-wide allocator settings for tensor workloads.
public enum Memory {
    /// On glibc, large blocks (above 32 MB, e.g. a [B·T, 4·D] activation) are otherwise mapped fresh by every
    /// allocation and unmapped on free, so every step page-faults its activations in again. Serving them from
    /// the heap and not trimming it lets a training or inference loop reuse its memory. Idempotent.
    public static let configure: Void = {
        #if !canImport(Accelerate)
        _ = mallopt(M_MMAP_MAX, 0)
        _ = mallopt(M_TRIM_THRESHOLD, -1)  // -1: never trim (a large positive value is still exceeded by GBs of activations)
        #endif
    }()
}

#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif
import Foundation
import PackedGEMM
import Platform

/// Row-major single-precision matrix products through the system BLAS (OpenBLAS on Linux, Accelerate on macOS).
///
/// OpenBLAS is pinned to one thread and large products are split across cores by `Parallel`, so that BLAS
/// threads never compete with the project's own workers (attention runs many small products in parallel).
public enum BLAS {
    private static let configured: Bool = {
        Memory.configure
        #if !canImport(Accelerate)
        openblas_set_num_threads(1)
        #endif
        return true
    }()

    /// C[m, n] = alpha · op(A) · op(B) + beta · C, all row-major. op(A) is [m, k]: A is [m, k] (lda ≥ k), or
    /// [k, m] when `transA` (lda ≥ m). op(B) is [k, n]: B is [k, n] (ldb ≥ n), or [n, k] when `transB` (ldb ≥ k).
    /// Runs on the calling thread only.
    @inline(__always)
    public static func gemmSerial(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        _ = configured
        if m == 0 || n == 0 { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// The same product as `gemmSerial`, split across `Parallel.workers` threads along the larger of m and n
    /// when the product is big enough to pay for it.
    ///
    /// Where `usePackedKernels` is on, products of at least `packedMinimumWork` multiply-adds with beta 0 or 1 run
    /// on `PackedGEMM` instead: op(B) is packed (times alpha) into panels, op(A) transposed into rows when
    /// `transA`, then row blocks (or, with few rows, panel ranges) are split across the workers.
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let flops = m * n * k
        if usePackedKernels && flops >= packedMinimumWork && k > 0 && (beta == 0 || beta == 1) {
            gemmPacked(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                       accumulate: beta == 1, c: c, ldc: ldc)
            return
        }
        if Parallel.workers == 1 || flops < 1 << 21 {
            gemmSerial(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                       b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let cp = SharedPointer(c)
        if m >= n {
            // Split rows of C: rows of op(A).
            Parallel.forChunks(m, grain: 16) { r in
                let aOff = transA ? r.lowerBound : r.lowerBound * lda
                gemmSerial(transA: transA, transB: transB, m: r.count, n: n, k: k, alpha: alpha, a: a + aOff,
                           lda: lda, b: b, ldb: ldb, beta: beta, c: cp.base + r.lowerBound * ldc, ldc: ldc)
            }
        } else {
            // Split columns of C: columns of op(B).
            Parallel.forChunks(n, grain: 16) { r in
                let bOff = transB ? r.lowerBound * ldb : r.lowerBound
                gemmSerial(transA: transA, transB: transB, m: m, n: r.count, k: k, alpha: alpha, a: a, lda: lda,
                           b: b + bOff, ldb: ldb, beta: beta, c: cp.base + r.lowerBound, ldc: ldc)
            }
        }
    }

    /// Whether `gemm` runs large products on `PackedGEMM` (on `PackedGEMM.family`): with any packed kernel family
    /// in optimised builds (`KernelSelection.packsTrainingProducts`), and in debug builds only when `COFI_KERNELS`
    /// names one; off with `COFI_KERNELS=blas`. The tests switch it on to check the path on every family.
    nonisolated(unsafe) public static var usePackedKernels = KernelFamily.selected.packsTrainingProducts
    /// Multiply-adds below which `gemm` stays on BLAS even with `usePackedKernels` (packing costs O(n·k)).
    nonisolated(unsafe) public static var packedMinimumWork = 1 << 18

    /// Rows per block of C in `gemmPacked`: a block's rows of A (128 × k) stay in a core's L2 while every panel
    /// of B passes over them.
    static let packedRowBlock = 128

    /// Reduction rows per block in `gemmPacked`: a product whose k is longer than two blocks (the weight gradients,
    /// whose k is the batch's tokens) runs in blocks of this depth, each continuing C's chains, so a block's panel (256 × 32 floats) and
    /// its rows of A stay in cache instead of streaming whole columns of thousands.
    nonisolated(unsafe) public static var packedDepthBlock = 256

    /// `gemm` on PackedGEMM, beta 0 (`accumulate` false) or 1.
    ///
    /// op(A) is read in place, a transposed A by its columns (`PackedGEMM.multiply(transposedA:)`), so it is never
    /// copied. op(B) is packed (times alpha) in depth blocks of at most `packedDepthBlock` rows of k: block [k0, k1) holds
    /// every panel, each (k1 − k0) × 32 floats, from offset k0 · (panels · 32). Each block after the first continues
    /// every output's fused multiply-add chain from the partial sum the block before left in C, so the blocked
    /// product has the bits of the unblocked one (and every family the same bits).
    static func gemmPacked(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, accumulate: Bool,
                           c: UnsafeMutablePointer<Float>, ldc: Int) {
        let P = PackedMatrix.panelWidth, panelCount = (n + P - 1) / P, paddedN = panelCount * P
        // Beta 1 (C = product + C) keeps one block: continuing a chain from C needs C to hold the chain alone.
        let depth = k > 2 * packedDepthBlock && !accumulate ? packedDepthBlock : k
        let depthBlocks = stride(from: 0, to: k, by: depth).map { $0..<min(k, $0 + depth) }
        Scratch.with(PackedGEMM.packedCount(n: n, k: k)) { scratch in
            let panels = SharedPointer(scratch)
            // op(B) into panels, times alpha, split by panels.
            Parallel.forChunks(panelCount, grain: max(1, (1 << 16) / max(1, k * P))) { ps in
                let j0 = ps.lowerBound * P, j1 = min(n, ps.upperBound * P)
                for kb in depthBlocks {
                    let out = panels.base + kb.lowerBound * paddedN + j0 * kb.count
                    if transB {
                        PackedGEMM.packRows(b + j0 * ldb + kb.lowerBound, ld: ldb, n: j1 - j0, k: kb.count, scale: alpha,
                                            into: out)
                    } else {
                        PackedGEMM.packColumns(b + kb.lowerBound * ldb + j0, ld: ldb, k: kb.count, n: j1 - j0,
                                               scale: alpha, into: out)
                    }
                }
            }
            // op(A) is read in place (a transposed A by its columns): element (r, kk) at a + r · rowStep + kk · depthStep.
            let rowStep = transA ? 1 : lda, depthStep = transA ? lda : 1
            // Work items: row blocks, each split into panel groups when the row blocks alone would leave a worker
            // idle (3 blocks on 2 workers) — every item the same size, so the workers finish together.
            let cs = SharedPointer(c), workers = Parallel.workers
            let blocks = (m + packedRowBlock - 1) / packedRowBlock
            let groups = blocks % workers == 0 || blocks >= 4 * workers ? 1 : min(panelCount, workers)
            Parallel.forChunks(blocks * groups) { items in
                for item in items {
                    let r0 = item / groups * packedRowBlock, r1 = min(m, r0 + packedRowBlock), g = item % groups
                    let j0 = panelCount * g / groups * P, j1 = min(n, panelCount * (g + 1) / groups * P)
                    if j0 >= j1 { continue }
                    for (i, kb) in depthBlocks.enumerated() {
                        PackedGEMM.multiply(a + r0 * rowStep + kb.lowerBound * depthStep, lda: lda, transposedA: transA,
                                            m: r1 - r0, panels: panels.base + kb.lowerBound * paddedN + j0 * kb.count,
                                            k: kb.count, n: j1 - j0, bias: nil, accumulate: accumulate, continuing: i > 0,
                                            into: cs.base + r0 * ldc + j0, ldc: ldc)
                    }
                }
            }
        }
    }

    /// Reused scratch buffers for `gemmPacked` (fresh multi-megabyte allocations would page-fault on every call).
    enum Scratch {
        nonisolated(unsafe) static var free: [(UnsafeMutablePointer<Float>, Int)] = []
        static let lock = NSLock()

        static func with<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
            lock.lock()
            var buffer: (UnsafeMutablePointer<Float>, Int)
            if let i = free.firstIndex(where: { $0.1 >= count }) {
                buffer = free.remove(at: i)
            } else {
                if !free.isEmpty { free.removeFirst().0.deallocate() }
                buffer = (UnsafeMutablePointer<Float>.allocate(capacity: max(1, count)), max(1, count))
            }
            lock.unlock()
            defer {
                lock.lock()
                free.append(buffer)
                lock.unlock()
            }
            return body(buffer.0)
        }
    }

    /// Naive triple loop with the same contract as `gemm`, accumulated in Double: the oracle for tests.
    public static func gemmNaive(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                                 a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                 beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(av) * Double(bv)
                }
                let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
                c[i * ldc + j] = Float(Double(alpha) * s + old)
            }
        }
    }
}

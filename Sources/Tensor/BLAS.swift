#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif

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
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let flops = m * n * k
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

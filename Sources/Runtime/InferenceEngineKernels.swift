import Foundation
import PackedGEMM
import Tensor

/// The inference engine's fused forward kernels over flat float buffers (shapes in the signatures; nothing
/// allocates). They run on the calling thread: the engine decides how to split rows or columns across threads.
/// Each kernel has a naive twin in `EngineKernels.Naive`, computed in Double, that the tests compare it to.
public enum EngineKernels {
    static let invSqrt2: Float = 0.70710678118654752

    /// LayerNorm of one row of `width` values in place: (x − mean)/√(var + eps)·γ + β, biased variance —
    /// the same arithmetic as the training path's `Kernels.layerNormForward`.
    @inline(__always)
    public static func layerNormRow(_ x: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Float>,
                                    beta: UnsafePointer<Float>, width: Int, eps: Float) {
        let mean = Kernels.sum(x, width) / Float(width)
        let r = 1 / (Kernels.sumSquaredDeviations(x, width, mean: mean) / Float(width) + eps).squareRoot()
        let m = FastMath.V(repeating: mean), rv = FastMath.V(repeating: r)
        var i = 0
        while i + 8 <= width {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: FastMath.V.self)
            let g = UnsafeRawPointer(gamma + i).loadUnaligned(as: FastMath.V.self)
            let b = UnsafeRawPointer(beta + i).loadUnaligned(as: FastMath.V.self)
            UnsafeMutableRawPointer(x + i).storeBytes(of: (v - m) * rv * g + b, as: FastMath.V.self)
            i += 8
        }
        while i < width { x[i] = (x[i] - mean) * r * gamma[i] + beta[i]; i += 1 }
    }

    /// Embedding rows: x[r] = LayerNorm(word[ids[r]] + position[positions[r]] + type[types[r]]) for r in `rows`;
    /// x, the tables [·, width] row-major.
    public static func embed(ids: UnsafePointer<Int32>, positions: UnsafePointer<Int32>, types: UnsafePointer<Int32>,
                             rows: Range<Int>, word: UnsafePointer<Float>, position: UnsafePointer<Float>,
                             type: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                             width D: Int, eps: Float, x: UnsafeMutablePointer<Float>) {
        for r in rows {
            let w = word + Int(ids[r]) * D, p = position + Int(positions[r]) * D, t = type + Int(types[r]) * D
            let xr = x + r * D
            for j in 0..<D { xr[j] = w[j] + p[j] + t[j] }
            layerNormRow(xr, gamma: gamma, beta: beta, width: D, eps: eps)
        }
    }

    /// c[r, j] = GELU(c[r, j] + bias[j]) for r in `rows`, j in `columns`; c has leading dimension `ldc`.
    /// GELU is the exact erf form, computed as the training path's `Kernels.geluForward` does.
    public static func biasGELU(_ c: UnsafeMutablePointer<Float>, ldc: Int, rows: Range<Int>, columns: Range<Int>,
                                bias: UnsafePointer<Float>) {
        let half = FastMath.V(repeating: 0.5), one = FastMath.V(repeating: 1), s = FastMath.V(repeating: invSqrt2)
        let n = columns.count
        for r in rows {
            let row = c + r * ldc + columns.lowerBound, b = bias + columns.lowerBound
            var j = 0
            while j + 8 <= n {
                let v = UnsafeRawPointer(row + j).loadUnaligned(as: FastMath.V.self)
                    + UnsafeRawPointer(b + j).loadUnaligned(as: FastMath.V.self)
                UnsafeMutableRawPointer(row + j).storeBytes(of: half * v * (one + FastMath.erf(v * s)),
                                                            as: FastMath.V.self)
                j += 8
            }
            if j < n {
                var v = FastMath.V()
                for i in 0..<(n - j) { v[i] = row[j + i] + b[j + i] }
                let y = half * v * (one + FastMath.erf(v * s))
                for i in 0..<(n - j) { row[j + i] = y[i] }
            }
        }
    }

    /// x[r] = LayerNorm(x[r] + y[r] + bias) for r in `rows`: the end of a sublayer (projection bias, residual,
    /// LayerNorm) in one pass. x and y are [·, width] with leading dimension `width`.
    public static func biasResidualLayerNorm(_ x: UnsafeMutablePointer<Float>, adding y: UnsafePointer<Float>,
                                             bias: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                             beta: UnsafePointer<Float>, rows: Range<Int>, width D: Int, eps: Float) {
        for r in rows {
            let xr = x + r * D, yr = y + r * D
            var j = 0
            while j + 8 <= D {
                let s = UnsafeRawPointer(xr + j).loadUnaligned(as: FastMath.V.self)
                    + (UnsafeRawPointer(yr + j).loadUnaligned(as: FastMath.V.self)
                        + UnsafeRawPointer(bias + j).loadUnaligned(as: FastMath.V.self))
                UnsafeMutableRawPointer(xr + j).storeBytes(of: s, as: FastMath.V.self)
                j += 8
            }
            while j < D { xr[j] = xr[j] + (yr[j] + bias[j]); j += 1 }
            layerNormRow(xr, gamma: gamma, beta: beta, width: D, eps: eps)
        }
    }

    /// Scaled dot-product attention of one sequence and one head:
    /// ctx[nq, Dh] = softmax(scale · q[nq, Dh] · k[T, Dh]ᵀ) · v[T, Dh], with q, k, v, ctx strided by their leading
    /// dimensions (heads side by side). `scores` holds nq·T floats of scratch. With `packed` scratch
    /// (`packedScratchCount(keys:headDim:)` floats) both products run on `PackedGEMM` — the keys packed times
    /// `scale`, the values packed as they are — else on BLAS.
    public static func attentionHead(q: UnsafePointer<Float>, ldq: Int, queries nq: Int,
                                     k: UnsafePointer<Float>, v: UnsafePointer<Float>, ldkv: Int, keys T: Int,
                                     headDim Dh: Int, scale: Float, scores: UnsafeMutablePointer<Float>,
                                     ctx: UnsafeMutablePointer<Float>, ldctx: Int,
                                     packed: UnsafeMutablePointer<Float>? = nil) {
        if let packed {
            let keys = packed, values = packed + PackedGEMM.packedCount(n: T, k: Dh)
            PackedGEMM.packRows(k, ld: ldkv, n: T, k: Dh, scale: scale, into: keys)
            PackedGEMM.multiply(q, lda: ldq, m: nq, panels: keys, k: Dh, n: T, bias: nil, into: scores, ldc: T)
            for i in 0..<nq { FastMath.softmax(scores + i * T, T) }
            PackedGEMM.packColumns(v, ld: ldkv, k: T, n: Dh, into: values)
            PackedGEMM.multiply(scores, lda: T, m: nq, panels: values, k: T, n: Dh, bias: nil, into: ctx, ldc: ldctx)
            return
        }
        BLAS.gemmSerial(transA: false, transB: true, m: nq, n: T, k: Dh, alpha: scale, a: q, lda: ldq,
                        b: k, ldb: ldkv, c: scores, ldc: T)
        for i in 0..<nq { FastMath.softmax(scores + i * T, T) }
        BLAS.gemmSerial(transA: false, transB: false, m: nq, n: Dh, k: T, a: scores, lda: T, b: v, ldb: ldkv,
                        c: ctx, ldc: ldctx)
    }

    /// Floats of packing scratch `attentionHead` needs for `keys` keys of width `headDim`.
    public static func packedScratchCount(keys T: Int, headDim Dh: Int) -> Int {
        PackedGEMM.packedCount(n: T, k: Dh) + PackedGEMM.packedCount(n: Dh, k: T)
    }

    /// Naive twins of the fused kernels, in Double: the oracles of the tests.
    public enum Naive {
        /// LayerNorm of `x` with γ, β (biased variance).
        public static func layerNorm(_ x: [Float], gamma: [Float], beta: [Float], eps: Float) -> [Float] {
            let n = Double(x.count)
            let mean = x.reduce(0.0) { $0 + Double($1) } / n
            let variance = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
            let r = 1 / (variance + Double(eps)).squareRoot()
            return x.indices.map { Float((Double(x[$0]) - mean) * r * Double(gamma[$0]) + Double(beta[$0])) }
        }

        /// GELU(x + b) element-wise.
        public static func biasGELU(_ x: [Float], bias: [Float]) -> [Float] {
            x.indices.map { Kernels.Naive.gelu(x[$0] + bias[$0 % bias.count]) }
        }

        /// Softmax of one row.
        public static func softmax(_ x: [Float]) -> [Float] { Kernels.Naive.softmax(x) }

        /// softmax(scale · q kᵀ) v for q [nq, Dh], k and v [T, Dh], all dense row-major.
        public static func attention(q: [Float], k: [Float], v: [Float], queries nq: Int, keys T: Int, headDim Dh: Int,
                                     scale: Float) -> [Float] {
            var out = [Float](repeating: 0, count: nq * Dh)
            for i in 0..<nq {
                var s = [Double](repeating: 0, count: T)
                for j in 0..<T {
                    var d = 0.0
                    for c in 0..<Dh { d += Double(q[i * Dh + c]) * Double(k[j * Dh + c]) }
                    s[j] = d * Double(scale)
                }
                let m = s.max() ?? 0
                let e = s.map { Foundation.exp($0 - m) }
                let z = e.reduce(0, +)
                for c in 0..<Dh {
                    var acc = 0.0
                    for j in 0..<T { acc += e[j] / z * Double(v[j * Dh + c]) }
                    out[i * Dh + c] = Float(acc)
                }
            }
            return out
        }
    }
}

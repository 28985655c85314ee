import Foundation

/// Forward and backward kernels over flat float buffers, in the manner of llm.c: the shapes are in the
/// signatures, nothing allocates. Each fast kernel has a naive twin in `Kernels.Naive` that tests compare it to.
public enum Kernels {
    static let invSqrt2: Float = 0.70710678118654752
    static let invSqrt2Pi: Float = 0.39894228040143268

    /// y[i] = ½·x·(1 + erf(x/√2)), parallel over chunks.
    public static func geluForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let ys = SharedPointer(y)
        Parallel.forChunks(n / 8, grain: 4096) { r in
            let lo = r.lowerBound * 8, hi = r.upperBound == n / 8 ? n : r.upperBound * 8
            FastMath.map(x + lo, ys.base + lo, hi - lo) { v in
                0.5 * v * (1 + FastMath.erf(v * invSqrt2))
            }
        }
        if n < 8 { FastMath.map(x, y, n) { v in 0.5 * v * (1 + FastMath.erf(v * invSqrt2)) } }
    }

    /// dx[i] = dy·(Φ(x) + x·φ(x)).
    public static func geluBackward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                                    _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        let dxs = SharedPointer(dx)
        let body: (Int, Int) -> Void = { lo, hi in
            var i = lo
            while i < hi {
                let m = min(8, hi - i)
                var v = FastMath.V(), g = FastMath.V()
                if m == 8 {
                    v = UnsafeRawPointer(x + i).loadUnaligned(as: FastMath.V.self)
                    g = UnsafeRawPointer(dy + i).loadUnaligned(as: FastMath.V.self)
                } else {
                    for j in 0..<m { v[j] = x[i + j]; g[j] = dy[i + j] }
                }
                let cdf = 0.5 * (1 + FastMath.erf(v * invSqrt2))
                let pdf = FastMath.exp(-0.5 * v * v) * invSqrt2Pi
                let r = g * (cdf + v * pdf)
                if m == 8 { UnsafeMutableRawPointer(dxs.base + i).storeBytes(of: r, as: FastMath.V.self) }
                else { for j in 0..<m { dxs.base[i + j] = r[j] } }
                i += 8
            }
        }
        let blocks = (n + 7) / 8
        Parallel.forChunks(blocks, grain: 4096) { r in body(r.lowerBound * 8, min(n, r.upperBound * 8)) }
    }

    /// Numerically stable softmax of one row of `n` values.
    @inline(__always)
    public static func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        var mx = -Float.infinity
        for i in 0..<n { mx = max(mx, x[i]) }
        let m = FastMath.V(repeating: mx)
        FastMath.map(x, y, n) { FastMath.exp($0 - m) }
        var s: Float = 0
        for i in 0..<n { s += y[i] }
        let inv = 1 / s
        for i in 0..<n { y[i] *= inv }
    }

    /// dx = y ⊙ (dy − ⟨dy, y⟩) for one softmax row.
    @inline(__always)
    public static func softmaxRowBackward(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                                          _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        var dot: Float = 0
        for i in 0..<n { dot += dy[i] * y[i] }
        for i in 0..<n { dx[i] = y[i] * (dy[i] - dot) }
    }

    /// Sum of n floats, 8 lanes at a time.
    @inline(__always)
    public static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = FastMath.V()
        var i = 0
        while i + 8 <= n { acc += UnsafeRawPointer(x + i).loadUnaligned(as: FastMath.V.self); i += 8 }
        var s = acc.sum()
        while i < n { s += x[i]; i += 1 }
        return s
    }

    /// Σ (x − mean)² over n floats, 8 lanes at a time.
    @inline(__always)
    public static func sumSquaredDeviations(_ x: UnsafePointer<Float>, _ n: Int, mean: Float) -> Float {
        var acc = FastMath.V()
        let m = FastMath.V(repeating: mean)
        var i = 0
        while i + 8 <= n {
            let d = UnsafeRawPointer(x + i).loadUnaligned(as: FastMath.V.self) - m
            acc = acc.addingProduct(d, d)
            i += 8
        }
        var s = acc.sum()
        while i < n { let d = x[i] - mean; s += d * d; i += 1 }
        return s
    }

    /// LayerNorm rows of x [rows, width]; over the `kept` dims only when given (others copied through).
    /// Saves x̂ (0 on dims not kept) and 1/σ per row for the backward pass when `xhat` is given.
    public static func layerNormForward(x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                        beta: UnsafePointer<Float>, kept: [Int]?, rows: Int, width: Int,
                                        eps: Float, y: UnsafeMutablePointer<Float>, xhat: UnsafeMutablePointer<Float>?,
                                        rstd: UnsafeMutablePointer<Float>) {
        let ys = SharedPointer(y), hs = xhat.map { SharedPointer($0) }, rs = SharedPointer(rstd)
        Parallel.forChunks(rows, grain: 32) { range in
            for n in range {
                let xr = x + n * width, yr = ys.base + n * width, hr = hs.map { $0.base + n * width }
                if let kept {
                    yr.update(from: xr, count: width)
                    if kept.isEmpty { rs.base[n] = 0; continue }
                    var mean: Float = 0
                    for i in kept { mean += xr[i] }
                    mean /= Float(kept.count)
                    var v: Float = 0
                    for i in kept { let d = xr[i] - mean; v += d * d }
                    let r = 1 / (v / Float(kept.count) + eps).squareRoot()
                    rs.base[n] = r
                    for i in kept {
                        let h = (xr[i] - mean) * r
                        hr?[i] = h
                        yr[i] = h * gamma[i] + beta[i]
                    }
                } else {
                    let mean = sum(xr, width) / Float(width)
                    let r = 1 / (sumSquaredDeviations(xr, width, mean: mean) / Float(width) + eps).squareRoot()
                    rs.base[n] = r
                    if let hr {
                        for i in 0..<width {
                            let h = (xr[i] - mean) * r
                            hr[i] = h
                            yr[i] = h * gamma[i] + beta[i]
                        }
                    } else {
                        for i in 0..<width { yr[i] = (xr[i] - mean) * r * gamma[i] + beta[i] }
                    }
                }
            }
        }
    }

    /// Backward of `layerNormForward`: dx = (1/σ)(γ·dy − mean(γ·dy) − x̂·mean(γ·dy·x̂)) on the kept dims,
    /// dx = dy elsewhere; dγ += Σ dy·x̂, dβ += Σ dy over rows (kept dims only). dx, dγ, dβ are overwritten.
    public static func layerNormBackward(dy: UnsafePointer<Float>, xhat: UnsafePointer<Float>,
                                         gamma: UnsafePointer<Float>, rstd: UnsafePointer<Float>, kept: [Int]?,
                                         rows: Int, width: Int, dx: UnsafeMutablePointer<Float>,
                                         dgamma: UnsafeMutablePointer<Float>, dbeta: UnsafeMutablePointer<Float>) {
        let idx = kept ?? Array(0..<width)
        let dxs = SharedPointer(dx)
        Parallel.forChunks(rows, grain: 64) { range in
            for n in range {
                let g = dy + n * width, h = xhat + n * width, d = dxs.base + n * width
                if kept != nil { d.update(from: g, count: width) }
                if idx.isEmpty { continue }
                var m1: Float = 0, m2: Float = 0
                for i in idx { let gg = g[i] * gamma[i]; m1 += gg; m2 += gg * h[i] }
                m1 /= Float(idx.count); m2 /= Float(idx.count)
                let r = rstd[n]
                for i in idx { d[i] = r * (g[i] * gamma[i] - m1 - h[i] * m2) }
            }
        }
        columnSums(dy, rows: rows, columns: width, weightedBy: xhat, into: dgamma)  // x̂ is 0 off the kept dims
        columnSums(dy, rows: rows, columns: width, into: dbeta)
        if let kept {
            var isKept = [Bool](repeating: false, count: width)
            for i in kept { isKept[i] = true }
            for i in 0..<width where !isKept[i] { dbeta[i] = 0 }
        }
    }

    /// out[j] = Σ_n x[n, j] (· w[n, j] when `weightedBy` is given) for x [rows, columns]: bias and LayerNorm
    /// gradients. Columns are split across threads; each sums its rows in order, so results are deterministic.
    public static func columnSums(_ x: UnsafePointer<Float>, rows: Int, columns: Int,
                                  weightedBy w: UnsafePointer<Float>? = nil, into out: UnsafeMutablePointer<Float>) {
        let os = SharedPointer(out)
        Parallel.forChunks(columns, grain: rows >= 64 ? 64 : columns) { cols in  // few rows: not worth a thread
            let o = os.base + cols.lowerBound, width = cols.count
            o.initialize(repeating: 0, count: width)
            for n in 0..<rows {
                let xr = x + n * columns + cols.lowerBound
                if let w {
                    let wr = w + n * columns + cols.lowerBound
                    for j in 0..<width { o[j] += xr[j] * wr[j] }
                } else {
                    for j in 0..<width { o[j] += xr[j] }
                }
            }
        }
    }

    /// Naive twins of the fast kernels, computed in Double: the oracles of the tests.
    public enum Naive {
        public static func gelu(_ x: Float) -> Float {
            Float(0.5 * Double(x) * (1 + Foundation.erf(Double(x) / 2.0.squareRoot())))
        }
        public static func geluDerivative(_ x: Float) -> Float {
            let d = Double(x)
            return Float(0.5 * (1 + Foundation.erf(d / 2.0.squareRoot())) + d * Foundation.exp(-d * d / 2) / (2 * Double.pi).squareRoot())
        }
        public static func softmax(_ x: [Float]) -> [Float] {
            let m = x.max() ?? 0
            let e = x.map { Foundation.exp(Double($0 - m)) }
            let s = e.reduce(0, +)
            return e.map { Float($0 / s) }
        }
    }
}

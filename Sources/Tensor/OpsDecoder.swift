import Foundation

/// The layers of decoder language models (LLaMA family) as differentiable ops: RMSNorm, SiLU, rotary position
/// embeddings. Each forward and backward runs on a kernel over flat buffers (`Kernels.rmsNorm…`,
/// `RotaryTable.rotate`) that the inference path calls too. Shapes: N = rows (B·T tokens), D = features.

/// RMSNorm over the last dimension of x [N, D] with gain w [D]: y = w ⊙ x / √(mean(x²) + ε) (no mean
/// subtraction, no bias; LLaMA's `LlamaRMSNorm`).
/// `keptWidth` (a hidden-dimension mask, Sheared-LLaMA's masked RMSNorm): the mean of x² is taken over that many
/// dims — the kept ones, where x is zero in every other dim — so the result equals the RMSNorm of the model with
/// those dims cut away. A discrete count: no gradient flows into it.
public func rmsNorm(_ x: Variable, weight: Variable, eps: Float, keptWidth: Int? = nil) -> Variable {
    let xv = x.value, w = weight.value
    let D = w.count
    precondition(xv.shape.last == D, "rmsNorm: width \(xv.shape.last ?? 0) but the weight has \(D)")
    let divisor = keptWidth ?? D
    precondition(divisor > 0 && divisor <= D, "rmsNorm: kept width \(divisor) outside 1...\(D)")
    let N = xv.count / max(D, 1)
    var rstd = [Float](repeating: 0, count: N)
    let y = Tensor(shape: xv.shape) { out in
        xv.withPointer { xp in w.withPointer { wp in rstd.withUnsafeMutableBufferPointer { rp in
            Kernels.rmsNormForward(x: xp, weight: wp, rows: N, width: D, eps: eps, y: out.baseAddress!,
                                   rstd: rp.baseAddress!, meanOver: divisor)
        } } }
    }
    let savedRstd = rstd
    return Variable(y, inputs: [x, weight]) { g in
        var dx = Tensor(zeros: xv.shape), dw = Tensor(zeros: [D])
        g.withPointer { gp in xv.withPointer { xp in w.withPointer { wp in savedRstd.withUnsafeBufferPointer { rp in
            dx.withMutablePointer { dxp in dw.withMutablePointer { dwp in
                Kernels.rmsNormBackward(dy: gp, x: xp, weight: wp, rstd: rp.baseAddress!, rows: N, width: D,
                                        dx: dxp, dweight: dwp, meanOver: divisor)
            } }
        } } } }
        x.accumulate(dx)
        weight.accumulate(dw)
    }
}

/// SiLU (swish): y = x · σ(x). The gate of LLaMA's SwiGLU FFN, down(silu(gate(x)) ⊙ up(x)).
public func silu(_ x: Variable) -> Variable {
    let xv = x.value
    let y = xv.map { $0 / (1 + Foundation.exp(-$0)) }
    return Variable(y, inputs: [x]) { g in
        x.accumulate(g.zipMap(xv) { gi, xi in
            let s = 1 / (1 + Foundation.exp(-xi))
            return gi * s * (1 + xi * (1 - s))
        })
    }
}

/// Rotary position embeddings on x [N, H·Dh] (H heads of width Dh side by side, as a Q or K projection makes
/// them): row n is rotated by the angles of position `positions[n]`, each head alike, in the "rotate half"
/// convention of Hugging Face's LLaMA (dims i and i + Dh/2 form a pair). The rotation is orthogonal, so the
/// gradient is the rotation by the negated angles.
public func rotary(_ x: Variable, positions: [Int], table: RotaryTable) -> Variable {
    let xv = x.value
    let Dh = table.headDim
    let C = xv.shape.last ?? 0, N = xv.count / max(C, 1)
    precondition(C % Dh == 0, "rotary: width \(C) is not a whole number of heads of \(Dh)")
    precondition(positions.count == N, "rotary: \(positions.count) positions for \(N) rows")
    func rotateAll(_ t: Tensor, inverse: Bool) -> Tensor {
        var out = t
        out.withMutablePointer { p in
            for (n, pos) in positions.enumerated() {
                table.rotate(p + n * C, heads: C / Dh, position: pos, inverse: inverse)
            }
        }
        return out
    }
    return Variable(rotateAll(xv, inverse: false), inputs: [x]) { g in x.accumulate(rotateAll(g, inverse: true)) }
}

/// The cosines and sines of rotary position embeddings for positions 0..<`positions`: inverse frequencies
/// θ^(−2i/Dh), i < Dh/2, angle = position · frequency, computed in Double and stored as Float.
public struct RotaryTable: Sendable {
    public let headDim: Int
    public let theta: Double
    /// cos and sin of position p's angles at p·(Dh/2) + i.
    public let cos: [Float], sin: [Float]

    public init(headDim: Int, theta: Double, positions: Int) {
        precondition(headDim > 0 && headDim % 2 == 0, "rotary embeddings need an even head width, got \(headDim)")
        self.headDim = headDim
        self.theta = theta
        let half = headDim / 2
        let freq = (0..<half).map { 1 / Foundation.pow(theta, Double(2 * $0) / Double(headDim)) }
        var c = [Float](repeating: 0, count: positions * half), s = c
        for p in 0..<positions {
            for i in 0..<half {
                let a = Double(p) * freq[i]
                c[p * half + i] = Float(Foundation.cos(a))
                s[p * half + i] = Float(Foundation.sin(a))
            }
        }
        cos = c
        sin = s
    }

    public var positions: Int { cos.count / max(headDim / 2, 1) }

    /// Rotates `heads` consecutive heads of one row in place by `position`'s angles (by their negation when
    /// `inverse`): (a, b) = (x[i], x[i + Dh/2]) → (a·cos − b·sin, b·cos + a·sin).
    @inline(__always)
    public func rotate(_ row: UnsafeMutablePointer<Float>, heads: Int, position: Int, inverse: Bool = false) {
        precondition(position >= 0 && position < positions, "rotary: position \(position) outside 0..<\(positions)")
        let half = headDim / 2
        cos.withUnsafeBufferPointer { cp in sin.withUnsafeBufferPointer { sp in
            let c = cp.baseAddress! + position * half, s = sp.baseAddress! + position * half
            let sign: Float = inverse ? -1 : 1
            for h in 0..<heads {
                let x = row + h * headDim
                for i in 0..<half {
                    let a = x[i], b = x[i + half], si = sign * s[i]
                    x[i] = a * c[i] - b * si
                    x[i + half] = b * c[i] + a * si
                }
            }
        } }
    }
}

extension Kernels {
    /// y = w ⊙ x · rstd per row, rstd = 1/√(Σx²/M + ε) with M = `meanOver` (nil: the width D; the kept width
    /// under a hidden-dimension mask), saved for the backward pass. Sums in Double.
    public static func rmsNormForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, rows: Int, width D: Int,
                                      eps: Float, y: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                                      meanOver: Int? = nil) {
        let M = Double(meanOver ?? D)
        for n in 0..<rows {
            let xr = x + n * D, yr = y + n * D
            var ss = 0.0
            for j in 0..<D { ss += Double(xr[j]) * Double(xr[j]) }
            let r = Float(1 / (ss / M + Double(eps)).squareRoot())
            rstd[n] = r
            for j in 0..<D { yr[j] = weight[j] * (xr[j] * r) }
        }
    }

    /// Gradients of `rmsNormForward`: with x̂ = x·rstd and g = dy ⊙ w, dx = rstd · (g − x̂ · Σ(g ⊙ x̂)/M) and
    /// dw = Σ_rows dy ⊙ x̂ (written, not accumulated); M = `meanOver` as in the forward.
    public static func rmsNormBackward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                       rstd: UnsafePointer<Float>, rows: Int, width D: Int,
                                       dx: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>,
                                       meanOver: Int? = nil) {
        let M = Double(meanOver ?? D)
        var dw = [Double](repeating: 0, count: D)
        for n in 0..<rows {
            let xr = x + n * D, gr = dy + n * D, dr = dx + n * D, r = rstd[n]
            var dot = 0.0
            for j in 0..<D {
                let xhat = xr[j] * r
                dot += Double(gr[j] * weight[j]) * Double(xhat)
                dw[j] += Double(gr[j]) * Double(xhat)
            }
            let m = Float(dot / M)
            for j in 0..<D { dr[j] = r * (gr[j] * weight[j] - xr[j] * r * m) }
        }
        for j in 0..<D { dweight[j] = Float(dw[j]) }
    }
}

import Foundation

/// Neural-network layers as differentiable ops: embedding lookup, linear, GELU, tanh, (masked) LayerNorm,
/// dropout and softmax. Shapes: N = rows (B·T tokens), D = features.

/// Rows `ids` of `table` [V, D] → [ids.count, D]. Gradient scatters back into the used rows.
public func embedding(_ table: Variable, ids: [Int]) -> Variable {
    let t = table.value
    let V = t.shape[0], D = t.shape[1]
    let y = Tensor(shape: [ids.count, D]) { out in
        t.withPointer { tp in
            for (i, id) in ids.enumerated() {
                precondition(id >= 0 && id < V, "token id \(id) outside the vocabulary 0..<\(V)")
                (out.baseAddress! + i * D).update(from: tp + id * D, count: D)
            }
        }
    }
    return Variable(y, inputs: [table]) { g in
        var dt = Tensor(zeros: t.shape)
        dt.withMutablePointer { dp in g.withPointer { gp in
            for (i, id) in ids.enumerated() { for j in 0..<D { dp[id * D + j] += gp[i * D + j] } }
        } }
        table.accumulate(dt)
    }
}

/// y[N, out] = x[N, in] · Wᵀ + b, with W [out, in] (the checkpoint layout) and b [out].
public func linear(_ x: Variable, weight: Variable, bias: Variable?) -> Variable {
    let xv = x.value, w = weight.value
    let outF = w.shape[0], inF = w.shape[1]
    precondition(xv.shape.last == inF, "linear: input width \(xv.shape.last ?? 0) but weight is \(w.shape)")
    let N = xv.count / inF
    var yShape = xv.shape
    yShape[yShape.count - 1] = outF
    // C starts as the bias rows (beta = 1), so the bias costs no extra pass over y.
    let y = Tensor(shape: yShape) { out in
        let op = SharedPointer(out.baseAddress!)
        if let b = bias?.value {
            b.withPointer { bp in
                Parallel.forChunks(N, grain: 256) { rows in
                    for n in rows { (op.base + n * outF).update(from: bp, count: outF) }
                }
            }
        }
        xv.withPointer { xp in w.withPointer { wp in
            BLAS.gemm(transA: false, transB: true, m: N, n: outF, k: inF, a: xp, lda: inF, b: wp, ldb: inF,
                      beta: bias == nil ? 0 : 1, c: op.base, ldc: outF)
        } }
    }
    let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
    return Variable(y, inputs: inputs) { g in
        g.withPointer { gp in
            if x.requiresGrad {
                x.accumulate(Tensor(shape: xv.shape) { dx in
                    w.withPointer { wp in
                        BLAS.gemm(transA: false, transB: false, m: N, n: inF, k: outF, a: gp, lda: outF, b: wp,
                                  ldb: inF, c: dx.baseAddress!, ldc: inF)
                    }
                })
            }
            if weight.requiresGrad {
                weight.accumulate(Tensor(shape: w.shape) { dw in
                    xv.withPointer { xp in
                        BLAS.gemm(transA: true, transB: false, m: outF, n: inF, k: N, a: gp, lda: outF, b: xp,
                                  ldb: inF, c: dw.baseAddress!, ldc: inF)
                    }
                })
            }
            if let bias, bias.requiresGrad {
                bias.accumulate(Tensor(shape: [outF]) { db in
                    Kernels.columnSums(gp, rows: N, columns: outF, into: db.baseAddress!)
                })
            }
        }
    }
}

/// GELU, exact erf form: y = x · Φ(x) = ½·x·(1 + erf(x/√2)).
public func gelu(_ x: Variable) -> Variable {
    let xv = x.value
    let y = Tensor(shape: xv.shape) { out in
        xv.withPointer { xp in Kernels.geluForward(xp, out.baseAddress!, xv.count) }
    }
    return Variable(y, inputs: [x]) { g in
        x.accumulate(Tensor(shape: xv.shape) { dx in
            xv.withPointer { xp in g.withPointer { gp in Kernels.geluBackward(xp, gp, dx.baseAddress!, xv.count) } }
        })
    }
}

/// Element-wise tanh.
public func tanh(_ x: Variable) -> Variable {
    let y = x.value.map { Foundation.tanh($0) }
    return Variable(y, inputs: [x]) { g in x.accumulate(g.zipMap(y) { gi, yi in gi * (1 - yi * yi) }) }
}

/// LayerNorm over the last dimension of x [N, D] with gain γ [D] and bias β [D] (biased variance, as PyTorch).
///
/// With `keep` (CoFi's masked LayerNorm, cofi-spec §1.5): mean and variance are taken over the kept dims only,
/// γ and β apply there, and every other dim passes through unchanged. `keep` is a discrete choice; no gradient
/// flows through it.
public func layerNorm(_ x: Variable, gamma: Variable, beta: Variable, eps: Float, keep: [Bool]? = nil) -> Variable {
    let xv = x.value
    let D = gamma.value.count
    precondition(xv.shape.last == D, "layerNorm: width \(xv.shape.last ?? 0) but γ has \(D)")
    let N = xv.count / D
    let kept: [Int]? = keep.map { k in
        precondition(k.count == D, "layerNorm: keep has \(k.count) entries for width \(D)")
        return k.indices.filter { k[$0] }
    }
    let saving = Variable.recordsGradient(for: [x, gamma, beta])
    // Normalised input on the kept dims (0 elsewhere) and 1/σ per row, saved for the backward pass only.
    var xhat = saving ? Tensor(zeros: xv.shape) : Tensor(zeros: [0])
    var rstd = [Float](repeating: 0, count: N)
    let y = Tensor(shape: xv.shape) { out in
        xv.withPointer { xp in gamma.value.withPointer { gp in beta.value.withPointer { bp in
            xhat.scalars.withUnsafeMutableBufferPointer { hb in rstd.withUnsafeMutableBufferPointer { rp in
                Kernels.layerNormForward(x: xp, gamma: gp, beta: bp, kept: kept, rows: N, width: D, eps: eps,
                                         y: out.baseAddress!, xhat: saving ? hb.baseAddress! : nil,
                                         rstd: rp.baseAddress!)
            } }
        } } }
    }
    let savedXhat = xhat, savedRstd = rstd
    return Variable(y, inputs: [x, gamma, beta]) { g in
        var dx = Tensor(zeros: xv.shape)
        var dgamma = [Float](repeating: 0, count: D), dbeta = [Float](repeating: 0, count: D)
        g.withPointer { gp in savedXhat.withPointer { hp in gamma.value.withPointer { wp in
            savedRstd.withUnsafeBufferPointer { rp in
                dx.withMutablePointer { dxp in dgamma.withUnsafeMutableBufferPointer { dg in
                    dbeta.withUnsafeMutableBufferPointer { db in
                        Kernels.layerNormBackward(dy: gp, xhat: hp, gamma: wp, rstd: rp.baseAddress!, kept: kept,
                                                  rows: N, width: D, dx: dxp, dgamma: dg.baseAddress!,
                                                  dbeta: db.baseAddress!)
                    }
                } }
            }
        } } }
        x.accumulate(dx)
        gamma.accumulate(Tensor(shape: [D], scalars: dgamma))
        beta.accumulate(Tensor(shape: [D], scalars: dbeta))
    }
}

/// Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1−p). Identity when
/// p = 0. The keep pattern is drawn from `rng`, one draw per element in row-major order, so a seed fixes it; with
/// `rows` (x's first dimension is that slice of a larger batch) the other rows' draws are skipped, so the slice
/// gets the pattern it has in the whole batch.
///
/// With `packed`, x [N, D] holds the real tokens of a padded batch [B·T, D]: the pattern is drawn for the padded
/// batch and each packed row takes its token's draws, so packed and padded runs drop the same units.
public func dropout(_ x: Variable, p: Float, rng: inout Xoshiro256, rows: RowSlice? = nil,
                    packed: PackedSequences? = nil) -> Variable {
    if p <= 0 { return x }
    precondition(p < 1, "dropout probability \(p) must be below 1")
    let scale = 1 / (1 - p)
    let keep: [Float]
    if let packed {
        let width = x.shape.last ?? 1
        precondition(x.shape.first == packed.count, "dropout: \(x.shape) is not the \(packed.count) packed rows")
        keep = packed.gather(RowSlice.draw(packed.batch * packed.seqLen * width, rows: rows, rng: &rng) {
            $0.nextUniform() < p ? Float(0) : scale
        }, width: width)
    } else {
        keep = RowSlice.draw(x.value.count, rows: rows, rng: &rng) { $0.nextUniform() < p ? Float(0) : scale }
    }
    let maskT = Tensor(shape: x.value.shape, scalars: keep)
    return Variable(x.value.zipMap(maskT, *), inputs: [x]) { g in x.accumulate(g.zipMap(maskT, *)) }
}

/// Softmax over the last dimension.
public func softmax(_ x: Variable) -> Variable {
    let xv = x.value
    let C = xv.shape.last ?? 1, N = xv.count / max(C, 1)
    let y = Tensor(shape: xv.shape) { out in
        xv.withPointer { xp in
            for n in 0..<N { Kernels.softmaxRow(xp + n * C, out.baseAddress! + n * C, C) }
        }
    }
    return Variable(y, inputs: [x]) { g in
        x.accumulate(Tensor(shape: xv.shape) { dx in
            y.withPointer { yp in g.withPointer { gp in
                for n in 0..<N { Kernels.softmaxRowBackward(yp + n * C, gp + n * C, dx.baseAddress! + n * C, C) }
            } }
        })
    }
}

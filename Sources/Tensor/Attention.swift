/// Multi-head scaled dot-product attention as one differentiable op.
///
/// q, k, v: [B·T, H·Dh] (token-major, heads side by side, as the Q/K/V projections produce them);
/// `additiveMask`: [B, T], added to every query's score for each key (0 for real tokens, −10000 for padding);
/// result: the per-head contexts softmax(q_h k_hᵀ/√Dh + mask) v_h, concatenated back to [B·T, H·Dh].
/// Attention-probability dropout with rate `dropout` uses `rng` (drawn before the parallel part, so the
/// pattern depends only on the seed; with `rows`, B is that slice of a larger batch and the other rows' draws are
/// skipped). Each (batch, head) pair is a few small BLAS products; pairs run in parallel.
public func attention(q: Variable, k: Variable, v: Variable, batch B: Int, seqLen T: Int, heads H: Int,
                      headDim Dh: Int, additiveMask: [Float]?, dropout p: Float = 0,
                      rng: inout Xoshiro256, rows: RowSlice? = nil) -> Variable {
    let HD = H * Dh
    precondition(q.shape == [B * T, HD] && k.shape == [B * T, HD] && v.shape == [B * T, HD],
                 "attention: q/k/v must be [\(B * T), \(HD)], got \(q.shape) \(k.shape) \(v.shape)")
    precondition(additiveMask == nil || additiveMask!.count == B * T, "attention: mask must be [B, T]")
    let scale = 1 / Float(Dh).squareRoot()
    let qv = q.value, kv = k.value, vv = v.value
    let TT = T * T
    // Dropout keep-scales [B, H, T, T], or nil.
    let drop: [Float]? = p > 0
        ? RowSlice.draw(B * H * TT, rows: rows, rng: &rng) { $0.nextUniform() < p ? Float(0) : 1 / (1 - p) } : nil

    var probs = [Float](repeating: 0, count: B * H * TT)   // softmax output P, before dropout
    let out = Tensor(shape: [B * T, HD]) { o in
        let op = SharedPointer(o.baseAddress!)
        qv.withPointer { qp in kv.withPointer { kp in vv.withPointer { vp in
            probs.withUnsafeMutableBufferPointer { pb in
                let pp = SharedPointer(pb.baseAddress!)
                Parallel.forChunks(B * H, grain: 1) { pairs in
                    // The dropped-out probabilities A = P ⊙ keep-scales [T, T]: one buffer per chunk, owned here
                    // (not an array's storage, whose pointer is valid only inside its closure).
                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: drop == nil ? 0 : TT)
                    defer { scratch.deallocate() }
                    for pair in pairs {
                        let b = pair / H, h = pair % H
                        let base = b * T * HD + h * Dh
                        let P = pp.base + pair * TT
                        // S = scale · Q_bh K_bhᵀ  [T, T]
                        BLAS.gemmSerial(transA: false, transB: true, m: T, n: T, k: Dh, alpha: scale,
                                        a: qp + base, lda: HD, b: kp + base, ldb: HD, c: P, ldc: T)
                        for i in 0..<T {
                            let row = P + i * T
                            if let m = additiveMask { for j in 0..<T { row[j] += m[b * T + j] } }
                            Kernels.softmaxRow(row, row, T)
                        }
                        var A = UnsafePointer(P)
                        if let drop {
                            for i in 0..<TT { scratch[i] = P[i] * drop[pair * TT + i] }
                            A = UnsafePointer(scratch)
                        }
                        // ctx_bh = A V_bh  [T, Dh]
                        BLAS.gemmSerial(transA: false, transB: false, m: T, n: Dh, k: T, a: A, lda: T,
                                        b: vp + base, ldb: HD, c: op.base + base, ldc: HD)
                    }
                }
            }
        } } }
    }
    let savedP = probs
    return Variable(out, inputs: [q, k, v]) { g in
        var dq = Tensor(zeros: [B * T, HD]), dk = Tensor(zeros: [B * T, HD]), dv = Tensor(zeros: [B * T, HD])
        g.withPointer { gp in qv.withPointer { qp in kv.withPointer { kp in vv.withPointer { vp in
            savedP.withUnsafeBufferPointer { pb in
                dq.withMutablePointer { dqp in dk.withMutablePointer { dkp in dv.withMutablePointer { dvp in
                    let dqs = SharedPointer(dqp), dks = SharedPointer(dkp), dvs = SharedPointer(dvp)
                    Parallel.forChunks(B * H, grain: 1) { pairs in
                        var dP = [Float](repeating: 0, count: TT)
                        var A = [Float](repeating: 0, count: TT)
                        for pair in pairs {
                            let b = pair / H, h = pair % H
                            let base = b * T * HD + h * Dh
                            let P = pb.baseAddress! + pair * TT
                            dP.withUnsafeMutableBufferPointer { dPb in A.withUnsafeMutableBufferPointer { Ab in
                                let dPp = dPb.baseAddress!, Ap = Ab.baseAddress!
                                if let drop { for i in 0..<TT { Ap[i] = P[i] * drop[pair * TT + i] } }
                                else { Ap.update(from: P, count: TT) }
                                // dV_bh = Aᵀ dCtx_bh
                                BLAS.gemmSerial(transA: true, transB: false, m: T, n: Dh, k: T, a: Ap, lda: T,
                                                b: gp + base, ldb: HD, c: dvs.base + base, ldc: HD)
                                // dA = dCtx_bh V_bhᵀ, then through dropout
                                BLAS.gemmSerial(transA: false, transB: true, m: T, n: T, k: Dh, a: gp + base,
                                                lda: HD, b: vp + base, ldb: HD, c: dPp, ldc: T)
                                if let drop { for i in 0..<TT { dPp[i] *= drop[pair * TT + i] } }
                                // dS = softmax backward, in place
                                for i in 0..<T {
                                    Kernels.softmaxRowBackward(P + i * T, dPp + i * T, dPp + i * T, T)
                                }
                                // dQ = scale · dS K,  dK = scale · dSᵀ Q
                                BLAS.gemmSerial(transA: false, transB: false, m: T, n: Dh, k: T, alpha: scale,
                                                a: dPp, lda: T, b: kp + base, ldb: HD, c: dqs.base + base, ldc: HD)
                                BLAS.gemmSerial(transA: true, transB: false, m: T, n: Dh, k: T, alpha: scale,
                                                a: dPp, lda: T, b: qp + base, ldb: HD, c: dks.base + base, ldc: HD)
                            } }
                        }
                    }
                } } }
            }
        } } } }
        q.accumulate(dq)
        k.accumulate(dk)
        v.accumulate(dv)
    }
}

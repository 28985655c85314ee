import Foundation

/// Causal grouped-query attention as one differentiable op, on a padded batch (the attention of decoder LMs).
///
/// q: [B·T, Hq·Dh]; k, v: [B·T, Hkv·Dh] (token-major, heads side by side, as the projections make them), with
/// Hq = Hkv · G: query head h reads key/value head h / G (the G query heads of a group are consecutive, as
/// `repeat_kv` in Hugging Face's LLaMA lays them out). Query t of sequence b attends to keys s ≤ t of the same
/// sequence whose `keyMask[b·T + s]` is true (nil: every token is real): softmax(q kᵀ/√Dh) over those keys, then
/// the weighted sum of their values. A query with no key to attend to (a left-padding position) gets zeros.
/// Result: [B·T, Hq·Dh]. Each (sequence, KV head) pair is a few small BLAS products; pairs run in parallel, and a
/// pair owns the gradients of its keys and values, so the backward pass needs no locks.
public func causalAttention(q: Variable, k: Variable, v: Variable, batch B: Int, seqLen T: Int, kvHeads Hkv: Int,
                            headDim Dh: Int, keyMask: [Bool]?) -> Variable {
    let qD = q.shape.last ?? 0, kvD = Hkv * Dh
    precondition(Hkv > 0 && qD % kvD == 0, "causalAttention: \(qD) query columns are not a multiple of \(Hkv) KV heads of \(Dh)")
    precondition(q.shape == [B * T, qD] && k.shape == [B * T, kvD] && v.shape == [B * T, kvD],
                 "causalAttention: q must be [\(B * T), Hq·\(Dh)], k and v [\(B * T), \(kvD)]; got \(q.shape) \(k.shape) \(v.shape)")
    precondition(keyMask == nil || keyMask!.count == B * T, "causalAttention: keyMask must have B·T = \(B * T) entries")
    let G = qD / kvD, Hq = Hkv * G
    let scale = 1 / Float(Dh).squareRoot()
    let qv = q.value, kv = k.value, vv = v.value
    let TT = T * T
    // Softmax probabilities of pair (b, h) at (b·Hq + h)·T·T; a blocked entry is exactly 0.
    var probs = [Float](repeating: 0, count: B * Hq * TT)
    let out = Tensor(shape: [B * T, qD]) { o in
        let op = SharedPointer(o.baseAddress!)
        qv.withPointer { qp in kv.withPointer { kp in vv.withPointer { vp in probs.withUnsafeMutableBufferPointer { pb in
            let pp = SharedPointer(pb.baseAddress!)
            Parallel.forChunks(B * Hkv, grain: 1) { pairs in
                for pair in pairs {
                    let b = pair / Hkv, g = pair % Hkv
                    let kBase = b * T * kvD + g * Dh
                    let mask = keyMask.map { Array($0[(b * T)..<(b * T + T)]) }
                    for h in (g * G)..<(g * G + G) {
                        let qBase = b * T * qD + h * Dh
                        let P = pp.base + (b * Hq + h) * TT
                        // S = scale · Q_bh K_bgᵀ  [T, T], then the masked softmax of each row
                        BLAS.gemmSerial(transA: false, transB: true, m: T, n: T, k: Dh, alpha: scale,
                                        a: qp + qBase, lda: qD, b: kp + kBase, ldb: kvD, c: P, ldc: T)
                        for t in 0..<T {
                            Kernels.causalSoftmaxRow(P + t * T, count: T, query: t, keyMask: mask)
                        }
                        // ctx_bh = P V_bg  [T, Dh]
                        BLAS.gemmSerial(transA: false, transB: false, m: T, n: Dh, k: T, a: P, lda: T,
                                        b: vp + kBase, ldb: kvD, c: op.base + qBase, ldc: qD)
                    }
                }
            }
        } } } }
    }
    let savedP = probs
    return Variable(out, inputs: [q, k, v]) { grad in
        var dq = Tensor(zeros: q.shape), dk = Tensor(zeros: k.shape), dv = Tensor(zeros: v.shape)
        grad.withPointer { gp in qv.withPointer { qp in kv.withPointer { kp in vv.withPointer { vp in
            savedP.withUnsafeBufferPointer { pb in
                dq.withMutablePointer { dqp in dk.withMutablePointer { dkp in dv.withMutablePointer { dvp in
                    let dqs = SharedPointer(dqp), dks = SharedPointer(dkp), dvs = SharedPointer(dvp)
                    Parallel.forChunks(B * Hkv, grain: 1) { pairs in
                        let dS = UnsafeMutablePointer<Float>.allocate(capacity: TT)
                        defer { dS.deallocate() }
                        for pair in pairs {
                            let b = pair / Hkv, g = pair % Hkv
                            let kBase = b * T * kvD + g * Dh
                            for h in (g * G)..<(g * G + G) {
                                let qBase = b * T * qD + h * Dh
                                let P = pb.baseAddress! + (b * Hq + h) * TT
                                // dV_bg += Pᵀ dCtx_bh
                                BLAS.gemmSerial(transA: true, transB: false, m: T, n: Dh, k: T, a: P, lda: T,
                                                b: gp + qBase, ldb: qD, beta: 1, c: dvs.base + kBase, ldc: kvD)
                                // dP = dCtx_bh V_bgᵀ, then dS = softmax backward (0 where P is 0)
                                BLAS.gemmSerial(transA: false, transB: true, m: T, n: T, k: Dh, a: gp + qBase,
                                                lda: qD, b: vp + kBase, ldb: kvD, c: dS, ldc: T)
                                for t in 0..<T { Kernels.softmaxRowBackward(P + t * T, dS + t * T, dS + t * T, T) }
                                // dQ_bh = scale · dS K_bg,  dK_bg += scale · dSᵀ Q_bh
                                BLAS.gemmSerial(transA: false, transB: false, m: T, n: Dh, k: T, alpha: scale,
                                                a: dS, lda: T, b: kp + kBase, ldb: kvD, c: dqs.base + qBase, ldc: qD)
                                BLAS.gemmSerial(transA: true, transB: false, m: T, n: Dh, k: T, alpha: scale,
                                                a: dS, lda: T, b: qp + qBase, ldb: qD, beta: 1, c: dks.base + kBase,
                                                ldc: kvD)
                            }
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

extension Kernels {
    /// In place: the softmax of row `query` of a causal score matrix over the keys s ≤ `query` that `keyMask`
    /// (this sequence's entries, nil: all) lets through; every other entry becomes 0, and so does the whole row
    /// when no key is let through. Exponentials in Double (rows are short; this is the oracle-grade path).
    @inline(__always)
    public static func causalSoftmaxRow(_ row: UnsafeMutablePointer<Float>, count: Int, query: Int, keyMask: [Bool]?) {
        var mx = -Float.infinity
        for s in 0...min(query, count - 1) where keyMask?[s] ?? true { mx = max(mx, row[s]) }
        guard mx > -Float.infinity else {
            row.update(repeating: 0, count: count)
            return
        }
        var sum = 0.0
        for s in 0..<count {
            if s <= query && keyMask?[s] ?? true {
                let e = Foundation.exp(Double(row[s] - mx))
                row[s] = Float(e)
                sum += e
            } else {
                row[s] = 0
            }
        }
        let inv = Float(1 / sum)
        for s in 0...min(query, count - 1) { row[s] *= inv }
    }
}

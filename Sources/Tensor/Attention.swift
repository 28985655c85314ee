/// Multi-head scaled dot-product attention as one differentiable op, on a padded batch or on packed sequences.
///
/// q, k, v: [rows, H·Dh] (token-major, heads side by side, as the Q/K/V projections produce them); result: the
/// per-head contexts softmax(q_h k_hᵀ/√Dh + mask) v_h, concatenated back to [rows, H·Dh]. Each (sequence, head)
/// pair is a few small BLAS products; pairs run in parallel.
///
/// Attention-probability dropout with rate `dropout` uses `rng` (drawn before the parallel part, so the pattern
/// depends only on the seed). The pattern is always drawn for the padded batch [B, H, T, T]; packed sequences use
/// the entries of their real tokens, so a packed batch drops what the padded batch drops. With `rows`, B is that
/// slice of a larger batch and the other rows' draws are skipped.

/// A padded batch: q, k, v are [B·T, H·Dh]; `additiveMask` [B, T] is added to every query's score for each key
/// (0 for real tokens, −10000 for padding), or nil when every token is real.
public func attention(q: Variable, k: Variable, v: Variable, batch B: Int, seqLen T: Int, heads H: Int,
                      headDim Dh: Int, additiveMask: [Float]?, dropout p: Float = 0,
                      rng: inout Xoshiro256, rows: RowSlice? = nil) -> Variable {
    precondition(additiveMask == nil || additiveMask!.count == B * T, "attention: mask must be [B, T]")
    let layout = AttentionLayout(batch: B, seqLen: T, starts: (0...B).map { $0 * T }, positions: nil, heads: H)
    return attention(q: q, k: k, v: v, layout: layout, headDim: Dh, additiveMask: additiveMask, dropout: p,
                     rng: &rng, rows: rows)
}

/// Packed sequences: q, k, v are [N, H·Dh], the real tokens of `packed`; each sequence attends over its own tokens.
public func attention(q: Variable, k: Variable, v: Variable, packed: PackedSequences, heads H: Int, headDim Dh: Int,
                      dropout p: Float = 0, rng: inout Xoshiro256, rows: RowSlice? = nil) -> Variable {
    let layout = AttentionLayout(batch: packed.batch, seqLen: packed.seqLen, starts: packed.starts,
                                 positions: packed.positions, heads: H)
    return attention(q: q, k: k, v: v, layout: layout, headDim: Dh, additiveMask: nil, dropout: p, rng: &rng,
                     rows: rows)
}

/// Where each sequence's rows lie in q/k/v and where each (sequence, head) pair's probabilities lie.
private struct AttentionLayout {
    let batch: Int, seqLen: Int, heads: Int
    /// Sequence b is rows starts[b] ..< starts[b + 1].
    let starts: [Int]
    /// Each row's position t in the padded sequence, or nil when sequence b's row r is t = r − starts[b].
    let positions: [Int]?
    /// Pair (b, h) = b·H + h has its n_b × n_b probabilities at offsets[pair]; B·H + 1 entries.
    let offsets: [Int]

    init(batch B: Int, seqLen T: Int, starts: [Int], positions: [Int]?, heads H: Int) {
        batch = B
        seqLen = T
        heads = H
        self.starts = starts
        self.positions = positions
        var offsets = [0]
        offsets.reserveCapacity(B * H + 1)
        for b in 0..<B {
            let n = starts[b + 1] - starts[b]
            for _ in 0..<H { offsets.append(offsets.last! + n * n) }
        }
        self.offsets = offsets
    }

    var rows: Int { starts[batch] }
    func length(_ b: Int) -> Int { starts[b + 1] - starts[b] }
    var longest: Int { (0..<batch).map(length).max() ?? 0 }

    /// The keep-scales of each pair's block, from the pattern drawn for the padded batch [B, H, T, T].
    func dropScales(_ padded: [Float]) -> [Float] {
        guard let positions else { return padded }  // padded: every block is T × T, in order
        let T = seqLen, TT = T * T
        var out = [Float](repeating: 0, count: offsets.last!)
        for b in 0..<batch {
            let n = length(b), pos = positions[starts[b]..<starts[b + 1]].map { $0 }
            for h in 0..<heads {
                let pair = b * heads + h, from = pair * TT, to = offsets[pair]
                for i in 0..<n {
                    let src = from + pos[i] * T, dst = to + i * n
                    for j in 0..<n { out[dst + j] = padded[src + pos[j]] }
                }
            }
        }
        return out
    }
}

private func attention(q: Variable, k: Variable, v: Variable, layout: AttentionLayout, headDim Dh: Int,
                       additiveMask: [Float]?, dropout p: Float, rng: inout Xoshiro256, rows: RowSlice?) -> Variable {
    let B = layout.batch, T = layout.seqLen, H = layout.heads, R = layout.rows
    let HD = H * Dh
    precondition(q.shape == [R, HD] && k.shape == [R, HD] && v.shape == [R, HD],
                 "attention: q/k/v must be [\(R), \(HD)], got \(q.shape) \(k.shape) \(v.shape)")
    let scale = 1 / Float(Dh).squareRoot()
    let qv = q.value, kv = k.value, vv = v.value
    let offsets = layout.offsets, starts = layout.starts
    let longest = layout.longest
    // Dropout keep-scales, laid out as the probabilities, or nil.
    let drop: [Float]? = p > 0
        ? layout.dropScales(RowSlice.draw(B * H * T * T, rows: rows, rng: &rng) {
            $0.nextUniform() < p ? Float(0) : 1 / (1 - p)
        }) : nil

    var probs = [Float](repeating: 0, count: offsets.last!)   // softmax output P, before dropout
    let out = Tensor(shape: [R, HD]) { o in
        let op = SharedPointer(o.baseAddress!)
        qv.withPointer { qp in kv.withPointer { kp in vv.withPointer { vp in
            probs.withUnsafeMutableBufferPointer { pb in
                let pp = SharedPointer(pb.baseAddress!)
                Parallel.forChunks(B * H, grain: 1) { pairs in
                    // The dropped-out probabilities A = P ⊙ keep-scales: one buffer per chunk, owned here
                    // (not an array's storage, whose pointer is valid only inside its closure).
                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: drop == nil ? 0 : longest * longest)
                    defer { scratch.deallocate() }
                    for pair in pairs {
                        let b = pair / H, h = pair % H
                        let n = starts[b + 1] - starts[b]
                        guard n > 0 else { continue }
                        let base = starts[b] * HD + h * Dh
                        let P = pp.base + offsets[pair]
                        // S = scale · Q_bh K_bhᵀ  [n, n]
                        BLAS.gemmSerial(transA: false, transB: true, m: n, n: n, k: Dh, alpha: scale,
                                        a: qp + base, lda: HD, b: kp + base, ldb: HD, c: P, ldc: n)
                        for i in 0..<n {
                            let row = P + i * n
                            if let m = additiveMask { for j in 0..<n { row[j] += m[b * T + j] } }
                            Kernels.softmaxRow(row, row, n)
                        }
                        var A = UnsafePointer(P)
                        if let drop {
                            let d = offsets[pair]
                            for i in 0..<(n * n) { scratch[i] = P[i] * drop[d + i] }
                            A = UnsafePointer(scratch)
                        }
                        // ctx_bh = A V_bh  [n, Dh]
                        BLAS.gemmSerial(transA: false, transB: false, m: n, n: Dh, k: n, a: A, lda: n,
                                        b: vp + base, ldb: HD, c: op.base + base, ldc: HD)
                    }
                }
            }
        } } }
    }
    let savedP = probs
    return Variable(out, inputs: [q, k, v]) { g in
        var dq = Tensor(zeros: [R, HD]), dk = Tensor(zeros: [R, HD]), dv = Tensor(zeros: [R, HD])
        g.withPointer { gp in qv.withPointer { qp in kv.withPointer { kp in vv.withPointer { vp in
            savedP.withUnsafeBufferPointer { pb in
                dq.withMutablePointer { dqp in dk.withMutablePointer { dkp in dv.withMutablePointer { dvp in
                    let dqs = SharedPointer(dqp), dks = SharedPointer(dkp), dvs = SharedPointer(dvp)
                    Parallel.forChunks(B * H, grain: 1) { pairs in
                        let dPp = UnsafeMutablePointer<Float>.allocate(capacity: longest * longest)
                        let Ap = UnsafeMutablePointer<Float>.allocate(capacity: longest * longest)
                        defer { dPp.deallocate(); Ap.deallocate() }
                        for pair in pairs {
                            let b = pair / H, h = pair % H
                            let n = starts[b + 1] - starts[b]
                            guard n > 0 else { continue }
                            let nn = n * n, d = offsets[pair]
                            let base = starts[b] * HD + h * Dh
                            let P = pb.baseAddress! + d
                            if let drop { for i in 0..<nn { Ap[i] = P[i] * drop[d + i] } }
                            else { Ap.update(from: P, count: nn) }
                            // dV_bh = Aᵀ dCtx_bh
                            BLAS.gemmSerial(transA: true, transB: false, m: n, n: Dh, k: n, a: Ap, lda: n,
                                            b: gp + base, ldb: HD, c: dvs.base + base, ldc: HD)
                            // dA = dCtx_bh V_bhᵀ, then through dropout
                            BLAS.gemmSerial(transA: false, transB: true, m: n, n: n, k: Dh, a: gp + base,
                                            lda: HD, b: vp + base, ldb: HD, c: dPp, ldc: n)
                            if let drop { for i in 0..<nn { dPp[i] *= drop[d + i] } }
                            // dS = softmax backward, in place
                            for i in 0..<n {
                                Kernels.softmaxRowBackward(P + i * n, dPp + i * n, dPp + i * n, n)
                            }
                            // dQ = scale · dS K,  dK = scale · dSᵀ Q
                            BLAS.gemmSerial(transA: false, transB: false, m: n, n: Dh, k: n, alpha: scale,
                                            a: dPp, lda: n, b: kp + base, ldb: HD, c: dqs.base + base, ldc: HD)
                            BLAS.gemmSerial(transA: true, transB: false, m: n, n: Dh, k: n, alpha: scale,
                                            a: dPp, lda: n, b: qp + base, ldb: HD, c: dks.base + base, ldc: HD)
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

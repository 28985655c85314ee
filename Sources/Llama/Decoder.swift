import Foundation
import Tensor

/// The inference path of a `LlamaModel` for generation, batch 1: a prompt is prefilled (its tokens processed
/// together, in chunks of at most `chunkRows`), then tokens are decoded one at a time; each layer's keys (rotated)
/// and values are appended to a KV cache, so every step attends to the whole context without recomputing it.
///
/// No gradient tape: the weights are the model's tensors as they were when the decoder was made (read, never
/// copied); the KV cache (`maxContext` positions per layer) and the activation buffers (`chunkRows` rows) are
/// allocated once, here, and reused by every call. Products run on `BLAS.gemm` (OpenBLAS, or PackedGEMM where
/// `BLAS.usePackedKernels` is on), with the residual added by the product itself (beta = 1); attention runs per
/// query head on the calling threads (`Parallel`). The training-path forward is the oracle of the tests.
public final class LlamaDecoder {
    public let model: LlamaModel
    /// The most positions the cache holds (at most `max_position_embeddings`).
    public let maxContext: Int
    /// The most prompt tokens one pass processes; longer prompts run as consecutive chunks.
    public let chunkRows: Int
    /// Tokens in the cache: the position the next token takes.
    public private(set) var length = 0

    private let D: Int, Dh: Int, G: Int, V: Int
    private let eps: Float
    /// Per layer: keys [maxContext, Hkv·Dh] (rotated) and values, or empty for a layer without attention.
    private var keys: [[Float]], values: [[Float]]
    // Activations for `chunkRows` rows, each with the widest row any layer needs.
    private var x: [Float], h: [Float], q: [Float], ctx: [Float], gate: [Float], up: [Float], rstd: [Float]
    private var logits: [Float]

    /// A decoder over `model` holding up to `maxContext` positions (nil: `max_position_embeddings`).
    public init(model: LlamaModel, maxContext: Int? = nil, chunkRows: Int = 64) {
        let c = model.config
        precondition(chunkRows > 0, "LlamaDecoder: chunkRows must be positive")
        self.model = model
        let context = min(maxContext ?? c.maxPositionEmbeddings, c.maxPositionEmbeddings)
        self.maxContext = context
        precondition(context > 0, "LlamaDecoder: the context must hold at least one position")
        self.chunkRows = min(chunkRows, context)
        D = c.hiddenSize
        Dh = c.headDim
        G = c.groupSize
        V = c.vocabSize
        eps = Float(c.rmsNormEps)
        keys = model.layers.map { [Float](repeating: 0, count: ($0.attention?.kvWidth ?? 0) * context) }
        values = keys
        let rows = min(chunkRows, context)
        let qWidth = model.layers.map { $0.attention?.q.shape[0] ?? 0 }.max() ?? 0
        let ffnWidth = model.layers.map { $0.ffn?.gate.shape[0] ?? 0 }.max() ?? 0
        x = [Float](repeating: 0, count: rows * D)
        h = x
        q = [Float](repeating: 0, count: rows * qWidth)
        ctx = q
        gate = [Float](repeating: 0, count: rows * ffnWidth)
        up = gate
        rstd = [Float](repeating: 0, count: rows)
        logits = [Float](repeating: 0, count: rows * V)
    }

    /// Forgets the context (the buffers stay).
    public func reset() { length = 0 }

    /// Appends `tokens` to the context and returns the logits [V] of the last one (the scores of the next token).
    public func prefill(_ tokens: [Int]) -> [Float] {
        precondition(!tokens.isEmpty, "LlamaDecoder.prefill: no tokens")
        return append(tokens, allLogits: false)
    }

    /// Appends one token and returns the logits [V] of the next.
    public func decode(_ token: Int) -> [Float] { append([token], allLogits: false) }

    /// Appends `tokens` and returns the logits of every one of them, [tokens.count · V] (tests, scoring a text).
    public func append(_ tokens: [Int], allLogits: Bool) -> [Float] {
        precondition(length + tokens.count <= maxContext,
                     "LlamaDecoder: \(length) + \(tokens.count) tokens exceed the context of \(maxContext)")
        for id in tokens { precondition(id >= 0 && id < V, "LlamaDecoder: token id \(id) outside the vocabulary 0..<\(V)") }
        var out: [Float] = []
        var start = 0
        while start < tokens.count {
            let chunk = Array(tokens[start..<min(start + chunkRows, tokens.count)])
            let isLast = start + chunk.count == tokens.count
            // Scored rows: every one, the prompt's last one, or none (an earlier chunk of a long prompt).
            let scored = allLogits ? chunk.count : isLast ? 1 : 0
            run(chunk, scoredRows: scored)
            out += logits[0..<(scored * V)]
            start += chunk.count
        }
        return out
    }

    /// One pass over `tokens` (at most `chunkRows`) at positions `length`…; writes the logits of the last
    /// `scoredRows` rows into the first rows of `logits`.
    private func run(_ tokens: [Int], scoredRows m: Int) {
        let n = tokens.count, p0 = length
        model.embedTokens.value.withPointer { e in
            x.withUnsafeMutableBufferPointer { xb in
                for (i, id) in tokens.enumerated() { (xb.baseAddress! + i * D).update(from: e + id * D, count: D) }
            }
        }
        for (l, layer) in model.layers.enumerated() {
            if let a = layer.attention { attention(a, layer: l, rows: n, start: p0) }
            if let f = layer.ffn { ffn(f, rows: n) }
        }
        length += n
        guard m > 0 else { return }
        // Final RMSNorm and the output layer, on the scored rows only.
        normalize(model.norm.value, rows: m, from: n - m)
        h.withUnsafeBufferPointer { hb in logits.withUnsafeMutableBufferPointer { lb in
            product(hb.baseAddress!, model.outputWeight.value, rows: m, into: lb.baseAddress!)
        } }
    }

    /// h[0..<rows] = RMSNorm(x[from..<from + rows]) with gain `weight`.
    private func normalize(_ weight: Tensor, rows: Int, from: Int) {
        weight.withPointer { w in x.withUnsafeBufferPointer { xb in h.withUnsafeMutableBufferPointer { hb in
            rstd.withUnsafeMutableBufferPointer { rb in
                Kernels.rmsNormForward(x: xb.baseAddress! + from * D, weight: w, rows: rows, width: D, eps: eps,
                                       y: hb.baseAddress!, rstd: rb.baseAddress!)
            }
        } } }
    }

    /// y[rows, out] (+)= a[rows, in] · Wᵀ for a weight W [out, in]; `accumulate` adds to y (the residual).
    /// A few rows (a decode step) go straight to serial BLAS products over column blocks: `BLAS.gemm` would pack
    /// the whole weight for PackedGEMM on every call, which costs more than the product itself for one row.
    private func product(_ a: UnsafePointer<Float>, _ w: Tensor, rows: Int, into y: UnsafeMutablePointer<Float>,
                         accumulate: Bool = false) {
        let outF = w.shape[0], inF = w.shape[1]
        w.withPointer { wp in
            if rows < Self.packedMinimumRows {
                // Output columns split across the workers, each a serial BLAS product on its rows of W.
                let ys = SharedPointer(y)
                Parallel.forChunks(outF, grain: 256) { cols in
                    BLAS.gemmSerial(transA: false, transB: true, m: rows, n: cols.count, k: inF, a: a, lda: inF,
                                    b: wp + cols.lowerBound * inF, ldb: inF, beta: accumulate ? 1 : 0,
                                    c: ys.base + cols.lowerBound, ldc: outF)
                }
            } else {
                BLAS.gemm(transA: false, transB: true, m: rows, n: outF, k: inF, a: a, lda: inF, b: wp, ldb: inF,
                          beta: accumulate ? 1 : 0, c: y, ldc: outF)
            }
        }
    }

    /// Below this many rows a product skips `BLAS.gemm`'s per-call packing.
    static let packedMinimumRows = 16

    /// x += o(attention(rotary(q(h)), cache keys, cache values)) for rows at positions start…, after appending
    /// this chunk's keys and values to layer l's cache.
    private func attention(_ a: LlamaAttention, layer l: Int, rows n: Int, start p0: Int) {
        normalize(a.norm.value, rows: n, from: 0)
        let qW = a.q.shape[0], kvW = a.kvWidth, Hq = qW / Dh
        let table = model.rotaryTable, total = p0 + n, scale = 1 / Float(Dh).squareRoot()
        h.withUnsafeBufferPointer { hb in q.withUnsafeMutableBufferPointer { qb in
            keys[l].withUnsafeMutableBufferPointer { kb in values[l].withUnsafeMutableBufferPointer { vb in
                ctx.withUnsafeMutableBufferPointer { cb in
                    let hp = hb.baseAddress!, qp = qb.baseAddress!, kp = kb.baseAddress!, vp = vb.baseAddress!
                    product(hp, a.q.value, rows: n, into: qp)
                    product(hp, a.k.value, rows: n, into: kp + p0 * kvW)
                    product(hp, a.v.value, rows: n, into: vp + p0 * kvW)
                    for i in 0..<n {
                        table.rotate(qp + i * qW, heads: Hq, position: p0 + i)
                        table.rotate(kp + (p0 + i) * kvW, heads: kvW / Dh, position: p0 + i)
                    }
                    let cs = SharedPointer(cb.baseAddress!), qs = SharedPointer(qp)
                    let ks = SharedPointer(kp), vs = SharedPointer(vp)
                    Parallel.forChunks(Hq, grain: 1) { heads in
                        let scores = UnsafeMutablePointer<Float>.allocate(capacity: n * total)
                        defer { scores.deallocate() }
                        for head in heads {
                            let kv = (head / G) * Dh
                            // S = scale · Q_h K_gᵀ [n, total]; causal softmax; ctx_h = P V_g
                            BLAS.gemmSerial(transA: false, transB: true, m: n, n: total, k: Dh, alpha: scale,
                                            a: qs.base + head * Dh, lda: qW, b: ks.base + kv, ldb: kvW, c: scores,
                                            ldc: total)
                            for i in 0..<n {
                                Kernels.causalSoftmaxRow(scores + i * total, count: total, query: p0 + i, keyMask: nil)
                            }
                            BLAS.gemmSerial(transA: false, transB: false, m: n, n: Dh, k: total, a: scores, lda: total,
                                            b: vs.base + kv, ldb: kvW, c: cs.base + head * Dh, ldc: qW)
                        }
                    }
                }
            } }
        } }
        ctx.withUnsafeBufferPointer { cb in x.withUnsafeMutableBufferPointer { xb in
            product(cb.baseAddress!, a.o.value, rows: n, into: xb.baseAddress!, accumulate: true)
        } }
    }

    /// x += down(silu(gate(h)) ⊙ up(h)), h = RMSNorm(x).
    private func ffn(_ f: LlamaFFN, rows n: Int) {
        normalize(f.norm.value, rows: n, from: 0)
        let I = f.gate.shape[0]
        h.withUnsafeBufferPointer { hb in gate.withUnsafeMutableBufferPointer { gb in up.withUnsafeMutableBufferPointer { ub in
            product(hb.baseAddress!, f.gate.value, rows: n, into: gb.baseAddress!)
            product(hb.baseAddress!, f.up.value, rows: n, into: ub.baseAddress!)
            for i in 0..<(n * I) {
                let g = gb[i]
                gb[i] = g / (1 + Foundation.exp(-g)) * ub[i]
            }
            x.withUnsafeMutableBufferPointer { xb in
                product(gb.baseAddress!, f.down.value, rows: n, into: xb.baseAddress!, accumulate: true)
            }
        } } }
    }
}

import Foundation
import PackedGEMM
import Tensor

/// The inference path of a `LlamaModel` for generation, batch 1: a prompt is prefilled (its tokens processed
/// together, in chunks of at most `chunkRows`), then tokens are decoded one at a time; each layer's keys (rotated)
/// and values are appended to a KV cache, so every step attends to the whole context without recomputing it.
///
/// No gradient tape. The linear weights are packed once, here, into `PackedGEMM` panels (a layer's Q | K | V
/// stacked into one matrix, gate | up into another, the output layer its own), so a product streams its weight
/// panels in place and never repacks it; the products of a pass split those panels across the threads (a `WorkerTeam`)
/// and add the residual themselves. The RMSNorm gains and the rotary table are read from the model; the decoder
/// sees the weights as they were when it was made. The KV cache (`maxContext` positions per layer) and the
/// activation buffers (`chunkRows` rows) are allocated once and reused by every call. Attention runs as (query head, block of
/// rows) items on the threads; softmax, SiLU and the rest are 8-lane vector code (`FastMath`). The training-path forward is
/// the oracle of the tests.
public final class LlamaDecoder {
    public let model: LlamaModel
    /// The most positions the cache holds (at most `max_position_embeddings`).
    public let maxContext: Int
    /// The most prompt tokens one pass processes; longer prompts run as consecutive chunks.
    public let chunkRows: Int
    /// Tokens in the cache: the position the next token takes.
    public private(set) var length = 0

    /// A layer's weights packed for the products; nil sublayers are absent.
    private struct Layer {
        /// Q | K | V stacked, [qWidth + 2·kvWidth, D], and the output projection [D, qWidth].
        var qkv: PackedMatrix?, o: PackedMatrix?
        var qWidth = 0, kvWidth = 0
        /// gate | up stacked, [2·I, D], and down [D, I].
        var gateUp: PackedMatrix?, down: PackedMatrix?
        var ffnWidth = 0
    }

    private let D: Int, Dh: Int, G: Int, V: Int
    private let eps: Float
    private let layers: [Layer]
    private let output: PackedMatrix
    /// The threads of every pass (`Parallel.workers` of them, the caller included).
    private let team: WorkerTeam
    /// Per layer: keys [maxContext, Hkv·Dh] (rotated) and values, or empty for a layer without attention.
    private var keys: [[Float]], values: [[Float]]
    // Activations for `chunkRows` rows, each with the widest row any layer needs: the residual stream x, the
    // normalised h, the stacked projections (q | k | v, then gate | up), the attention context.
    private var x: [Float], h: [Float], projections: [Float], ctx: [Float], rstd: [Float]
    private var logits: [Float]

    /// A decoder over `model` holding up to `maxContext` positions (nil: `max_position_embeddings`).
    public init(model: LlamaModel, maxContext: Int? = nil, chunkRows: Int = 128) {
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
        let D = c.hiddenSize
        layers = model.layers.map { l in
            var p = Layer()
            if let a = l.attention {
                p.qWidth = a.q.shape[0]
                p.kvWidth = a.kvWidth
                p.qkv = a.q.value.withPointer { q in a.k.value.withPointer { k in a.v.value.withPointer { v in
                    PackedMatrix(k: D, segments: [(q, p.qWidth), (k, p.kvWidth), (v, p.kvWidth)])
                } } }
                p.o = a.o.value.withPointer { PackedMatrix(weights: $0, n: D, k: p.qWidth) }
            }
            if let f = l.ffn {
                p.ffnWidth = f.gate.shape[0]
                p.gateUp = f.gate.value.withPointer { g in f.up.value.withPointer { u in
                    PackedMatrix(k: D, segments: [(g, p.ffnWidth), (u, p.ffnWidth)])
                } }
                p.down = f.down.value.withPointer { PackedMatrix(weights: $0, n: D, k: p.ffnWidth) }
            }
            return p
        }
        output = model.outputWeight.value.withPointer { PackedMatrix(weights: $0, n: c.vocabSize, k: D) }
        keys = layers.map { [Float](repeating: 0, count: $0.kvWidth * context) }
        values = keys
        let rows = self.chunkRows
        let projectionWidth = layers.map { max($0.qWidth + 2 * $0.kvWidth, 2 * $0.ffnWidth) }.max() ?? 0
        x = [Float](repeating: 0, count: rows * D)
        h = x
        projections = [Float](repeating: 0, count: rows * projectionWidth)
        ctx = [Float](repeating: 0, count: rows * (layers.map(\.qWidth).max() ?? 0))
        rstd = [Float](repeating: 0, count: rows)
        logits = [Float](repeating: 0, count: rows * V)
        team = WorkerTeam(threads: Parallel.workers)
    }

    deinit {
        team.shutdown()
        for l in layers { for w in [l.qkv, l.o, l.gateUp, l.down] { w?.deallocate() } }
        output.deallocate()
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
        for (l, layer) in layers.enumerated() {
            if let qkv = layer.qkv, let o = layer.o {
                attention(layer, qkv: qkv, o: o, norm: model.layers[l].attention!.norm.value, layer: l, rows: n, start: p0)
            }
            if let gateUp = layer.gateUp, let down = layer.down {
                ffn(layer, gateUp: gateUp, down: down, norm: model.layers[l].ffn!.norm.value, rows: n)
            }
        }
        length += n
        guard m > 0 else { return }
        // Final RMSNorm and the output layer, on the scored rows only.
        normalize(model.norm.value, rows: m, from: n - m)
        h.withUnsafeBufferPointer { hb in logits.withUnsafeMutableBufferPointer { lb in
            product(hb.baseAddress!, lda: D, rows: m, output, into: lb.baseAddress!, ldc: V)
        } }
    }

    /// h[0..<rows] = RMSNorm(x[from..<from + rows]) with gain `weight`, blocks of rows on the threads.
    private func normalize(_ weight: Tensor, rows: Int, from: Int) {
        let D = self.D, eps = self.eps
        weight.withPointer { w in x.withUnsafeBufferPointer { xb in h.withUnsafeMutableBufferPointer { hb in
            rstd.withUnsafeMutableBufferPointer { rb in
                let xp = xb.baseAddress! + from * D, hs = SharedPointer(hb.baseAddress!), rs = SharedPointer(rb.baseAddress!)
                split(rows, pieces: rows / 16) { r in
                    Kernels.rmsNormForward(x: xp + r.lowerBound * D, weight: w, rows: r.count, width: D, eps: eps,
                                           y: hs.base + r.lowerBound * D, rstd: rs.base + r.lowerBound)
                }
            }
        } } }
    }

    /// Runs `body` over `0..<count` cut into at most `pieces` contiguous ranges, which the team's threads claim
    /// as they come free.
    private func split(_ count: Int, pieces: Int, _ body: (Range<Int>) -> Void) {
        let chunks = max(1, min(count, pieces))
        team.run(chunks: chunks) { c in body(count * c / chunks..<count * (c + 1) / chunks) }
    }

    /// c[rows, w.n] (+)= a[rows, w.k] · Wᵀ on the packed W, its panels in blocks that the threads claim;
    /// `accumulate` adds to c (the residual).
    private func product(_ a: UnsafePointer<Float>, lda: Int, rows: Int, _ w: PackedMatrix,
                         into c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false) {
        let cs = SharedPointer(c)
        let P = PackedMatrix.panelWidth, K = w.k
        let blocks = (K + Self.depthBlock - 1) / Self.depthBlock
        split(w.panelCount, pieces: 4 * team.threads) { panels in
            guard blocks > 1 else {
                PackedGEMM.multiply(a, lda: lda, m: rows, by: w, panels: panels, bias: nil, accumulate: accumulate,
                                    into: cs.base, ldc: ldc)
                return
            }
            // Blocked summation over k: each block's sum is a chain of its own, added to C in turn.
            for p in panels {
                let panel = w.data + p * K * P, column = cs.base + w.panelColumn[p], n = w.panelOutputs[p]
                for b in 0..<blocks {
                    let k0 = K * b / blocks, k1 = K * (b + 1) / blocks
                    PackedGEMM.multiply(a + k0, lda: lda, m: rows, panels: panel + k0 * P, k: k1 - k0, n: n, bias: nil,
                                        accumulate: accumulate || b > 0, into: column, ldc: ldc)
                }
            }
        }
    }

    /// Products over more than this many inputs sum in blocks (each block one chain, the block sums added in
    /// turn), which keeps float32 rounding closer to PyTorch's blocked kernels than one chain over all of k.
    static let depthBlock = 256

    /// x += o(attention(rotary(q(h)), cache keys, cache values)) for rows at positions start…, after appending
    /// this chunk's rotated keys and values to layer l's cache.
    private func attention(_ layer: Layer, qkv: PackedMatrix, o: PackedMatrix, norm: Tensor, layer l: Int,
                           rows n: Int, start p0: Int) {
        normalize(norm, rows: n, from: 0)
        let qW = layer.qWidth, kvW = layer.kvWidth, width = qW + 2 * kvW, Hq = qW / Dh, G = self.G, Dh = self.Dh
        let table = model.rotaryTable, scale = 1 / Float(Dh).squareRoot()
        h.withUnsafeBufferPointer { hb in projections.withUnsafeMutableBufferPointer { pb in
            keys[l].withUnsafeMutableBufferPointer { kb in values[l].withUnsafeMutableBufferPointer { vb in
                ctx.withUnsafeMutableBufferPointer { cb in
                    let qp = pb.baseAddress!, kp = kb.baseAddress!, vp = vb.baseAddress!
                    product(hb.baseAddress!, lda: D, rows: n, qkv, into: qp, ldc: width)
                    let qs = SharedPointer(qp), ks = SharedPointer(kp), vs = SharedPointer(vp)
                    split(n, pieces: n / 16) { rows in
                        for i in rows {
                            let row = qs.base + i * width
                            table.rotate(row, heads: Hq + kvW / Dh, position: p0 + i)   // the queries and the keys
                            (ks.base + (p0 + i) * kvW).update(from: row + qW, count: kvW)
                            (vs.base + (p0 + i) * kvW).update(from: row + qW + kvW, count: kvW)
                        }
                    }
                    // Items (query head, block of 32 rows), claimed by the threads; a block reads the keys up to
                    // its last row's position only.
                    let cs = SharedPointer(cb.baseAddress!), blocks = (n + 31) / 32
                    team.run(chunks: Hq * blocks) { item in
                        let head = item / blocks, r0 = (item % blocks) * 32, rows = min(32, n - r0)
                        let seen = p0 + r0 + rows, kv = (head / G) * Dh
                        let scores = UnsafeMutablePointer<Float>.allocate(capacity: rows * seen)
                        defer { scores.deallocate() }
                        // S = scale · Q_h K_gᵀ [rows, seen]; causal softmax (row i sees keys ≤ p0 + i); ctx_h = P V_g
                        BLAS.gemmSerial(transA: false, transB: true, m: rows, n: seen, k: Dh, alpha: scale,
                                        a: qs.base + r0 * width + head * Dh, lda: width, b: ks.base + kv, ldb: kvW,
                                        c: scores, ldc: seen)
                        for i in 0..<rows {
                            let row = scores + i * seen, visible = p0 + r0 + i + 1
                            FastMath.softmax(row, visible)
                            (row + visible).update(repeating: 0, count: seen - visible)
                        }
                        BLAS.gemmSerial(transA: false, transB: false, m: rows, n: Dh, k: seen, a: scores, lda: seen,
                                        b: vs.base + kv, ldb: kvW, c: cs.base + r0 * qW + head * Dh, ldc: qW)
                    }
                }
            } }
        } }
        ctx.withUnsafeBufferPointer { cb in x.withUnsafeMutableBufferPointer { xb in
            product(cb.baseAddress!, lda: qW, rows: n, o, into: xb.baseAddress!, ldc: D, accumulate: true)
        } }
    }

    /// x += down(silu(gate(h)) ⊙ up(h)), h = RMSNorm(x): gate | up in one product, then silu(g) · u written over
    /// the gate columns, which the down product reads in place.
    private func ffn(_ layer: Layer, gateUp: PackedMatrix, down: PackedMatrix, norm: Tensor, rows n: Int) {
        normalize(norm, rows: n, from: 0)
        let I = layer.ffnWidth, width = 2 * I
        h.withUnsafeBufferPointer { hb in projections.withUnsafeMutableBufferPointer { pb in
            let gp = pb.baseAddress!
            product(hb.baseAddress!, lda: D, rows: n, gateUp, into: gp, ldc: width)
            let gs = SharedPointer(gp)
            split(n, pieces: n / 8) { rows in
                for r in rows { Self.swiGLU(gs.base + r * width, up: gs.base + r * width + I, count: I) }
            }
            x.withUnsafeMutableBufferPointer { xb in
                product(gp, lda: width, rows: n, down, into: xb.baseAddress!, ldc: D, accumulate: true)
            }
        } }
    }

    /// g[j] = silu(g[j]) · u[j] = g / (1 + e^−g) · u for j < count, 8 lanes at a time.
    @inline(__always)
    static func swiGLU(_ g: UnsafeMutablePointer<Float>, up u: UnsafePointer<Float>, count: Int) {
        typealias V = FastMath.V
        var j = 0
        while j + 8 <= count {
            let gv = UnsafeRawPointer(g + j).loadUnaligned(as: V.self)
            let uv = UnsafeRawPointer(u + j).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(g + j).storeBytes(of: gv / (1 + FastMath.exp(-gv)) * uv, as: V.self)
            j += 8
        }
        while j < count {
            g[j] = g[j] / (1 + Foundation.exp(-g[j])) * u[j]
            j += 1
        }
    }
}

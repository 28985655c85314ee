import Dispatch
import Foundation

/// One sequence: token ids and token-type ids of the same length (1...maxPositions); no padding.
public struct EncodedInput: Sendable, Equatable {
    public var tokenIds: [Int]
    public var tokenTypeIds: [Int]

    /// `tokenTypeIds` nil: all 0.
    public init(tokenIds: [Int], tokenTypeIds: [Int]? = nil) {
        self.tokenIds = tokenIds
        self.tokenTypeIds = tokenTypeIds ?? Array(repeating: 0, count: tokenIds.count)
    }
}

/// What the engine returns for one sequence.
public struct SequenceOutput: Sendable, Equatable {
    /// Classification: one per label; regression: 1 value; span head: empty.
    public var logits: [Float]
    /// Span head: one per token; else empty.
    public var startLogits: [Float]
    /// Span head: one per token; else empty.
    public var endLogits: [Float]

    public init(logits: [Float], startLogits: [Float] = [], endLogits: [Float] = []) {
        self.logits = logits
        self.startLogits = startLogits
        self.endLogits = endLogits
    }
}

/// A model the engine cannot run, or an input it cannot take: says which input and what was expected.
public struct InferenceError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The forward-only path of a `BertModel` (dense or compact: every layer its own heads and FFN width, 0
/// included, and the hidden width possibly cut), for serving.
///
/// Owns a copy of the model's weights in its own layout (`EngineWeights`: one arena, Q/K/V stacked) and a
/// workspace of activation buffers that grows to the largest call and is then reused. No gradient tape, no
/// allocation per layer. Sequences of different lengths run packed: the linear layers see the concatenated
/// token rows [ΣT, D]; attention runs per sequence and head on that sequence's own length. For a pooled head
/// (classification, regression) only the [CLS] rows are carried past the last attention sublayer, since nothing
/// after it mixes tokens. Matrix products and element-wise passes are split across `threads` only when the work
/// pays for a thread (OpenBLAS itself is pinned to one thread, see `BLAS`).
///
/// `run` is serialised by a lock: one engine may be shared, but calls on it do not overlap.
public final class InferenceEngine {
    public let shape: BertShape
    public let task: TaskHeadKind
    public var maxPositions: Int { shape.maxPositions }
    /// Worker threads the engine splits its work across.
    public let threads: Int

    let eps: Float
    let weights: EngineWeights
    let workspace = Workspace()
    let lock = NSLock()
    /// For a pooled head: the last layer with attention (nil: none), after which only [CLS] rows are needed.
    let lastAttentionLayer: Int?
    let maxHeadWidth: Int      // max H·Dh over layers
    let maxFFNWidth: Int

    /// Copies `model`'s weights. `threads` nil: all cores (`Parallel.workers`). Throws for a model without a
    /// task head, or a pooled head without a pooler.
    public init(model: BertModel, threads: Int? = nil) throws {
        guard let task = model.task, model.head != nil else {
            throw InferenceError("the model has no task head (classification, regression or span); load it with "
                + "BertModel.load(directory:task:) to attach one")
        }
        if task.usesPooler && model.pooler == nil {
            throw InferenceError("the model's \(task) head needs a pooler, and the model has none")
        }
        let n = threads ?? Parallel.workers
        guard n >= 1 else { throw InferenceError("threads must be at least 1, got \(n)") }
        self.shape = model.shape
        self.task = task
        self.threads = n
        self.eps = Float(model.config.layerNormEps)
        self.weights = EngineWeights(model: model)
        self.lastAttentionLayer = model.shape.layers.lastIndex { $0.heads > 0 }
        self.maxHeadWidth = model.shape.layers.map { $0.heads * model.shape.headDim }.max() ?? 0
        self.maxFFNWidth = model.shape.layers.map(\.ffnWidth).max() ?? 0
    }

    deinit { weights.deallocate() }

    /// Runs the sequences (any mix of lengths) and returns one output per input, in order.
    /// Throws for an empty sequence, a length over maxPositions, or an id outside the vocabulary / type vocabulary.
    public func run(_ inputs: [EncodedInput]) throws -> [SequenceOutput] {
        try validate(inputs)
        if inputs.isEmpty { return [] }
        lock.lock()
        defer { lock.unlock() }
        return forward(inputs)
    }

    func validate(_ inputs: [EncodedInput]) throws {
        for (i, input) in inputs.enumerated() {
            let T = input.tokenIds.count
            if T == 0 { throw InferenceError("input \(i): empty sequence (expected 1…\(maxPositions) tokens)") }
            if T > maxPositions {
                throw InferenceError("input \(i): \(T) tokens, more than the model's maximum of \(maxPositions) positions")
            }
            if input.tokenTypeIds.count != T {
                throw InferenceError("input \(i): \(input.tokenTypeIds.count) token-type ids for \(T) token ids (expected one per token)")
            }
            if let j = input.tokenIds.firstIndex(where: { $0 < 0 || $0 >= shape.vocabSize }) {
                throw InferenceError("input \(i), token \(j): id \(input.tokenIds[j]) outside the vocabulary (expected 0..<\(shape.vocabSize))")
            }
            if let j = input.tokenTypeIds.firstIndex(where: { $0 < 0 || $0 >= shape.typeVocabSize }) {
                throw InferenceError("input \(i), token \(j): token-type id \(input.tokenTypeIds[j]) outside the type vocabulary (expected 0..<\(shape.typeVocabSize))")
            }
        }
    }

    // MARK: - Threads

    /// Runs `body(chunk, range)` over `0..<count` split into at most `threads` contiguous chunks of at least
    /// `grain` iterations, concurrently when there is more than one. Boundaries depend only on the arguments.
    @inline(__always)
    func forChunks(_ count: Int, grain: Int, _ body: (Int, Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(threads, max(1, count / max(grain, 1)))
        if chunks == 1 { body(0, 0..<count); return }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(c, lo..<hi) }
        }
    }

    /// Multiply-adds below which a matrix product or the attention of a layer stays on one thread (a thread
    /// hand-off costs microseconds). The tests set it to 0 to run every threaded path on small models.
    var parallelGEMMWork = 1 << 20
    /// Floats below which an element-wise pass stays on one thread (0 in the tests, as above).
    var parallelElementWork = 1 << 15

    /// c[m, n] (leading dimension ldc) = a[m, k] · w[n, k]ᵀ (+ bias[n] when given) (then GELU when `gelu`),
    /// with a and w row-major (lda, ldw = k). Split across threads by column blocks of c when big enough: each
    /// thread reads all of a and its own rows of w, and applies the epilogue to its own block.
    func linear(_ a: UnsafePointer<Float>, lda: Int, m: Int, k: Int, weight w: UnsafePointer<Float>, n: Int,
                bias: UnsafePointer<Float>?, gelu: Bool = false, into c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        let cs = SharedPointer(c)
        let grain = m * n * k >= parallelGEMMWork ? max(16, n / threads) : n
        forChunks(n, grain: grain) { _, cols in
            let cb = cs.base + cols.lowerBound
            if let bias, !gelu {
                for r in 0..<m { (cb + r * ldc).update(from: bias + cols.lowerBound, count: cols.count) }
            }
            BLAS.gemmSerial(transA: false, transB: true, m: m, n: cols.count, k: k, a: a, lda: lda,
                            b: w + cols.lowerBound * k, ldb: k, beta: bias != nil && !gelu ? 1 : 0, c: cb, ldc: ldc)
            if gelu, let bias {
                EngineKernels.biasGELU(cs.base, ldc: ldc, rows: 0..<m, columns: cols, bias: bias)
            }
        }
    }

    /// x[rows, D] = LayerNorm(x + y + bias) row by row, across threads when big enough.
    func biasResidualLayerNorm(_ x: UnsafeMutablePointer<Float>, adding y: UnsafePointer<Float>, rows: Int,
                               bias: Int, gamma: Int, beta: Int) {
        let D = shape.hiddenSize, w = weights
        let xs = SharedPointer(x)
        forChunks(rows, grain: max(1, parallelElementWork / D)) { _, r in
            EngineKernels.biasResidualLayerNorm(xs.base, adding: y, bias: w.at(bias), gamma: w.at(gamma),
                                                beta: w.at(beta), rows: r, width: D, eps: self.eps)
        }
    }

    // MARK: - Forward

    /// The packed forward pass over validated inputs.
    func forward(_ inputs: [EncodedInput]) -> [SequenceOutput] {
        let B = inputs.count, D = shape.hiddenSize, Dh = shape.headDim, w = weights
        var N = 0, maxT = 0
        for s in inputs { N += s.tokenIds.count; maxT = max(maxT, s.tokenIds.count) }
        let ws = workspace
        ws.reserve(tokens: N, sequences: B, maxLength: maxT, hidden: D, maxHeadWidth: maxHeadWidth,
                   maxFFNWidth: maxFFNWidth, poolerWidth: shape.poolerWidth, outputs: task.outputs, workers: threads)

        // Token rows, packed: sequence b owns rows offsets[b] ..< offsets[b + 1].
        var row = 0
        for (b, s) in inputs.enumerated() {
            ws.offsets[b] = row
            for t in 0..<s.tokenIds.count {
                ws.ids[row] = Int32(s.tokenIds[t])
                ws.types[row] = Int32(s.tokenTypeIds[t])
                ws.positions[row] = Int32(t)
                row += 1
            }
        }
        ws.offsets[B] = N

        let x = ws.x
        let xs = SharedPointer(x)
        forChunks(N, grain: max(1, parallelElementWork / D)) { _, r in
            EngineKernels.embed(ids: ws.ids, positions: ws.positions, types: ws.types, rows: r,
                                word: w.at(w.wordEmbeddings), position: w.at(w.positionEmbeddings),
                                type: w.at(w.tokenTypeEmbeddings), gamma: w.at(w.embeddingNormGamma),
                                beta: w.at(w.embeddingNormBeta), width: D, eps: eps, x: xs.base)
        }

        // `rows` is the number of live rows of x: every token, or one [CLS] row per sequence once cut.
        var rows = N
        var cut = false
        func cutToCLSRows() {
            for b in 0..<B where ws.offsets[b] != b { (x + b * D).update(from: x + ws.offsets[b] * D, count: D) }
            rows = B
            cut = true
        }
        if task.usesPooler && lastAttentionLayer == nil { cutToCLSRows() }

        for (l, layer) in w.layers.enumerated() {
            if layer.heads > 0 {
                let H = layer.heads, HD = H * Dh, ld = 3 * HD
                let qkv = ws.qkv, ctx = ws.ctx
                if task.usesPooler && l == lastAttentionLayer {
                    // Keys and values for every token, queries for the [CLS] rows only.
                    linear(x, lda: D, m: N, k: D, weight: w.at(layer.qkvWeight) + HD * D, n: 2 * HD,
                           bias: w.at(layer.qkvBias) + HD, into: qkv + HD, ldc: ld)
                    cutToCLSRows()
                    linear(x, lda: D, m: B, k: D, weight: w.at(layer.qkvWeight), n: HD,
                           bias: w.at(layer.qkvBias), into: qkv, ldc: ld)
                    attention(qkv: qkv, heads: H, clsQueriesOnly: true, sequences: B, ctx: ctx)
                } else {
                    linear(x, lda: D, m: rows, k: D, weight: w.at(layer.qkvWeight), n: 3 * HD,
                           bias: w.at(layer.qkvBias), into: qkv, ldc: ld)
                    attention(qkv: qkv, heads: H, clsQueriesOnly: false, sequences: B, ctx: ctx)
                }
                linear(ctx, lda: HD, m: rows, k: HD, weight: w.at(layer.attentionOutWeight), n: D, bias: nil,
                       into: ws.tmp, ldc: D)
                biasResidualLayerNorm(x, adding: ws.tmp, rows: rows, bias: layer.attentionOutBias,
                                      gamma: layer.attentionNormGamma, beta: layer.attentionNormBeta)
            }
            if layer.ffnWidth > 0 {
                let I = layer.ffnWidth
                linear(x, lda: D, m: rows, k: D, weight: w.at(layer.intermediateWeight), n: I,
                       bias: w.at(layer.intermediateBias), gelu: true, into: ws.ffn, ldc: I)
                linear(ws.ffn, lda: I, m: rows, k: I, weight: w.at(layer.ffnOutWeight), n: D, bias: nil,
                       into: ws.tmp, ldc: D)
                biasResidualLayerNorm(x, adding: ws.tmp, rows: rows, bias: layer.ffnOutBias,
                                      gamma: layer.ffnNormGamma, beta: layer.ffnNormBeta)
            }
        }
        precondition(!task.usesPooler || cut, "a pooled head must have cut to the [CLS] rows")
        return head(sequences: B, tokens: N)
    }

    /// Multi-head attention of every sequence on its own rows: ctx[row, h·Dh…] = softmax(q kᵀ/√Dh) v per
    /// (sequence, head). qkv holds Q | K | V side by side ([·, 3·H·Dh]); with `clsQueriesOnly`, the query of
    /// sequence b is row b of Q (its [CLS] token, already gathered) and the context goes to row b of ctx.
    /// Work items are (sequence, head, query block), split across threads in contiguous runs of equal cost.
    func attention(qkv: UnsafeMutablePointer<Float>, heads H: Int, clsQueriesOnly: Bool, sequences B: Int,
                   ctx: UnsafeMutablePointer<Float>) {
        let Dh = shape.headDim, HD = H * Dh, ld = 3 * HD
        let scale = 1 / Float(Dh).squareRoot()
        let ws = workspace
        let offsets = ws.offsets
        let pairs = B * H
        // Split the queries of a (sequence, head) pair only when there are fewer pairs than threads.
        let blocks = !clsQueriesOnly && pairs < threads ? threads : 1
        let items = pairs * blocks
        func queryRange(_ b: Int, _ blk: Int) -> Range<Int> {
            if clsQueriesOnly { return 0..<1 }
            let T = offsets[b + 1] - offsets[b]
            return (T * blk / blocks)..<(T * (blk + 1) / blocks)
        }
        func cost(_ item: Int) -> Int {
            let b = item / blocks / H
            return queryRange(b, item % blocks).count * (offsets[b + 1] - offsets[b])
        }
        var total = 0
        for i in 0..<items { total += cost(i) }
        let chunks = total * Dh * 2 >= parallelGEMMWork ? min(threads, items) : 1
        let ctxs = SharedPointer(ctx)
        let body: (Int) -> Void = { c in
            let scores = ws.scores + c * ws.scoreStride
            // This chunk takes the items whose cumulative cost midpoint falls in its share of the total.
            var before = 0
            for i in 0..<items {
                let ci = cost(i)
                let mid = 2 * before + ci  // 2 × midpoint
                before += ci
                guard mid * chunks >= 2 * total * c && mid * chunks < 2 * total * (c + 1) else { continue }
                let pair = i / blocks, b = pair / H, h = pair % H
                let q = queryRange(b, i % blocks)
                if q.isEmpty { continue }
                let first = offsets[b], T = offsets[b + 1] - first
                let qRow = clsQueriesOnly ? b : first + q.lowerBound
                EngineKernels.attentionHead(q: qkv + qRow * ld + h * Dh, ldq: ld, queries: q.count,
                                            k: qkv + first * ld + HD + h * Dh, v: qkv + first * ld + 2 * HD + h * Dh,
                                            ldkv: ld, keys: T, headDim: Dh, scale: scale, scores: scores,
                                            ctx: ctxs.base + qRow * HD + h * Dh, ldctx: HD)
            }
        }
        if chunks == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: chunks, execute: body) }
    }

    /// The task head on the final rows: pooled heads read row b (the gathered [CLS] rows); the span head reads
    /// every token row.
    func head(sequences B: Int, tokens N: Int) -> [SequenceOutput] {
        let D = shape.hiddenSize, w = weights, ws = workspace
        let C = task.outputs
        switch task {
        case .classification, .regression:
            let Pw = shape.poolerWidth
            linear(ws.x, lda: D, m: B, k: D, weight: w.at(w.poolerWeight!), n: Pw, bias: w.at(w.poolerBias!),
                   into: ws.pooled, ldc: Pw)
            for i in 0..<(B * Pw) { ws.pooled[i] = Foundation.tanh(ws.pooled[i]) }
            linear(ws.pooled, lda: Pw, m: B, k: Pw, weight: w.at(w.headWeight), n: C, bias: w.at(w.headBias),
                   into: ws.logits, ldc: C)
            return (0..<B).map { b in SequenceOutput(logits: Array(UnsafeBufferPointer(start: ws.logits + b * C, count: C))) }
        case .span:
            linear(ws.x, lda: D, m: N, k: D, weight: w.at(w.headWeight), n: 2, bias: w.at(w.headBias),
                   into: ws.logits, ldc: 2)
            return (0..<B).map { b in
                let r = ws.offsets[b]..<ws.offsets[b + 1]
                return SequenceOutput(logits: [], startLogits: r.map { ws.logits[2 * $0] },
                                      endLogits: r.map { ws.logits[2 * $0 + 1] })
            }
        }
    }
}

/// The engine's activation buffers, allocated on the first call and grown (never shrunk) when a call needs
/// more: the packed hidden rows x [N, D], the stacked projections qkv [N, 3·H·Dh], the attention context
/// [N, H·Dh], the FFN activation [N, I], a projection output [N, D], per-thread attention scores [T, T], the
/// pooled rows and the logits, and the packed token ids, types, positions and sequence offsets.
final class Workspace {
    private(set) var tokenCapacity = 0, sequenceCapacity = 0, lengthCapacity = 0
    private var sizes: [Int] = []
    var x = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var qkv = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var ctx = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var ffn = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var tmp = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var scores = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var pooled = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var logits = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var ids = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    var types = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    var positions = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    var offsets = UnsafeMutablePointer<Int>.allocate(capacity: 2)
    /// Floats of score scratch per worker thread (the longest sequence squared).
    var scoreStride = 0
    /// Times the buffers were (re)allocated; the tests check that a smaller call reuses them.
    private(set) var allocations = 0

    /// Makes every buffer big enough for `tokens` packed rows of `sequences` sequences no longer than
    /// `maxLength`; reallocates only when a capacity grows.
    func reserve(tokens N: Int, sequences B: Int, maxLength T: Int, hidden D: Int, maxHeadWidth HD: Int,
                 maxFFNWidth I: Int, poolerWidth Pw: Int, outputs C: Int, workers: Int) {
        if N <= tokenCapacity && B <= sequenceCapacity && T <= lengthCapacity { return }
        let n = max(N, tokenCapacity), b = max(B, sequenceCapacity), t = max(T, lengthCapacity)
        release()
        x = .allocate(capacity: n * D)
        qkv = .allocate(capacity: max(1, n * 3 * HD))
        ctx = .allocate(capacity: max(1, n * HD))
        ffn = .allocate(capacity: max(1, n * I))
        tmp = .allocate(capacity: n * D)
        scoreStride = t * t
        scores = .allocate(capacity: workers * scoreStride)
        pooled = .allocate(capacity: b * Pw)
        logits = .allocate(capacity: max(2 * n, b * C))
        ids = .allocate(capacity: n)
        types = .allocate(capacity: n)
        positions = .allocate(capacity: n)
        offsets = .allocate(capacity: b + 1)
        tokenCapacity = n
        sequenceCapacity = b
        lengthCapacity = t
        allocations += 1
    }

    private func release() {
        x.deallocate(); qkv.deallocate(); ctx.deallocate(); ffn.deallocate(); tmp.deallocate()
        scores.deallocate(); pooled.deallocate(); logits.deallocate()
        ids.deallocate(); types.deallocate(); positions.deallocate(); offsets.deallocate()
    }

    deinit { release() }
}

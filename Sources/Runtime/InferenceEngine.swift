import BERT
import Dispatch
import Foundation
import PackedGEMM
import Platform
import Tensor

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
/// workspace of activation buffers that grows to the largest pass (a call of more than 8,192 tokens runs as
/// consecutive passes of whole sequences) and is then reused. No gradient tape, no allocation per layer.
/// Sequences of different lengths run packed: the linear layers see the concatenated token rows [ΣT, D];
/// attention runs per sequence and head on that sequence's own length. The forward is a `program` of row-local
/// chains and attention steps; for a pooled head (classification, regression) only the [CLS] rows are carried
/// past the keys and values of the last attention layer, since nothing after that mixes tokens. Threads
/// (OpenBLAS itself is pinned to one, see `BLAS`): balanced multi-sequence calls run as whole-sequence groups, one
/// per thread; otherwise row chains split by row blocks (many rows) or each product by column blocks, and
/// attention by (sequence, head, query block) items — each only when the work pays for a thread.
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
    /// The helper threads (see `WorkerTeam`).
    let team: WorkerTeam
    /// The forward pass as steps (see `program(layers:task:)`).
    let program: [Step]
    /// Multiply-adds per token of the linear layers, and per (query, key) pair of attention: the cost model
    /// that splits a call into groups of sequences.
    let linearWorkPerToken: Int
    let attentionWorkPerTokenPair: Int
    /// The widest H·Dh and FFN width over the layers. The workspace's per-row buffers keep these fixed row
    /// strides for every layer (qkv: 3·maxHeadWidth, ctx: maxHeadWidth, ffn: maxFFNWidth), so that blocks of rows
    /// on different threads never overlap, even when one block is a layer ahead of another.
    let maxHeadWidth: Int
    let maxFFNWidth: Int
    var ldQKV: Int { 3 * maxHeadWidth }

    /// Copies `model`'s weights. `threads` nil: all cores (`Parallel.workers`). The linear layers run on
    /// `PackedGEMM` unless the selected kernel family is BLAS (`KernelFamily.selected`). Throws for a model without
    /// a task head, or a pooled head without a pooler.
    public convenience init(model: BertModel, threads: Int? = nil) throws {
        try self.init(model: model, threads: threads,
                      packedWeights: KernelFamily.selected.family.usesPackedGEMM)
    }

    /// `packedWeights`: run the linear layers on `PackedGEMM` (the default wherever it is supported) or on BLAS.
    init(model: BertModel, threads: Int?, packedWeights: Bool) throws {
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
        self.team = WorkerTeam(threads: n)
        self.eps = Float(model.config.layerNormEps)
        self.weights = EngineWeights(model: model, packed: packedWeights)
        self.minRowsPerThread = packedWeights ? 16 : 256
        self.program = Self.program(layers: weights.layers, task: task)
        let D = model.shape.hiddenSize, Dh = model.shape.headDim
        self.linearWorkPerToken = model.shape.layers.reduce(0) { $0 + 4 * $1.heads * Dh * D + 2 * $1.ffnWidth * D }
        self.attentionWorkPerTokenPair = model.shape.layers.reduce(0) { $0 + 2 * $1.heads * Dh }
        self.maxHeadWidth = model.shape.layers.map { $0.heads * model.shape.headDim }.max() ?? 0
        self.maxFFNWidth = model.shape.layers.map(\.ffnWidth).max() ?? 0
    }

    deinit {
        team.shutdown()
        weights.deallocate()
    }

    /// Runs the sequences (any mix of lengths) and returns one output per input, in order.
    /// Throws for an empty sequence, a length over maxPositions, or an id outside the vocabulary / type vocabulary.
    public func run(_ inputs: [EncodedInput]) throws -> [SequenceOutput] {
        try validate(inputs)
        lock.lock()
        defer { lock.unlock() }
        var outputs: [SequenceOutput] = []
        outputs.reserveCapacity(inputs.count)
        var start = 0
        while start < inputs.count {
            var end = start, tokens = 0
            while end < inputs.count && (end == start || tokens + inputs[end].tokenIds.count <= maxTokensPerPass) {
                tokens += inputs[end].tokenIds.count
                end += 1
            }
            outputs += forward(inputs[start..<end])
            start = end
        }
        return outputs
    }

    /// Tokens above which one call runs as consecutive passes, each packing as many whole sequences as fit, so
    /// the workspace stays bounded however many sequences a call brings (8,192 tokens: B = 64 at T = 128).
    var maxTokensPerPass = 8192

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

    // MARK: - The forward program

    /// A row-local operation: each output row depends only on the same row of its inputs, so any block of rows
    /// can run on its own thread. Layer indices refer to `weights.layers`.
    enum RowOp {
        /// x = LayerNorm(word + position + type embeddings).
        case embed
        /// qkv = x · [Wq; Wk; Wv]ᵀ + b  [rows, 3·H·Dh].
        case queryKeyValue(Int)
        /// Keys and values only (qkv columns H·Dh ..< 3·H·Dh), for every token of the last attention layer.
        case keyValue(Int)
        /// Queries only (qkv columns 0 ..< H·Dh), for the [CLS] rows of the last attention layer.
        case query(Int)
        /// x = LayerNorm(x + ctx · Woᵀ + bo).
        case attentionOutput(Int)
        /// x = LayerNorm(x + GELU(x · W1ᵀ + b1) · W2ᵀ + b2).
        case feedForward(Int)
    }

    /// One step of the forward program: row-local work, attention (which needs all rows of a sequence), or the
    /// cut to one [CLS] row per sequence.
    enum Step {
        case rows([RowOp])
        case attention(layer: Int, clsQueries: Bool)
        case cutToCLS
    }

    /// The steps of a forward pass for `task` over layers of these shapes. Row-local work between two attention
    /// steps is one `.rows` step, so threads meet only around attention. For a pooled head the program cuts to the
    /// [CLS] rows right after the keys and values of the last attention layer (or after the embeddings when no
    /// layer has attention): nothing after that point mixes tokens.
    static func program(layers: [EngineWeights.Layer], task: TaskHeadKind) -> [Step] {
        var steps: [Step] = []
        var current: [RowOp] = [.embed]
        let lastAttention = layers.lastIndex { $0.heads > 0 }
        if task.usesPooler && lastAttention == nil {
            steps += [.rows(current), .cutToCLS]
            current = []
        }
        for (l, layer) in layers.enumerated() {
            if layer.heads > 0 {
                if task.usesPooler && l == lastAttention {
                    steps += [.rows(current + [.keyValue(l)]), .cutToCLS, .rows([.query(l)]),
                              .attention(layer: l, clsQueries: true)]
                } else {
                    steps += [.rows(current + [.queryKeyValue(l)]), .attention(layer: l, clsQueries: false)]
                }
                current = [.attentionOutput(l)]
            }
            if layer.ffnWidth > 0 { current.append(.feedForward(l)) }
        }
        if !current.isEmpty { steps.append(.rows(current)) }
        return steps
    }

    /// Multiply-adds per row of `op`.
    func work(_ op: RowOp) -> Int {
        let D = shape.hiddenSize, Dh = shape.headDim, L = weights.layers
        switch op {
        case .embed: return 4 * D
        case .queryKeyValue(let l): return 3 * L[l].heads * Dh * D
        case .keyValue(let l): return 2 * L[l].heads * Dh * D
        case .query(let l), .attentionOutput(let l): return L[l].heads * Dh * D
        case .feedForward(let l): return 2 * L[l].ffnWidth * D
        }
    }

    // MARK: - Threads

    /// Runs `body(chunk, range)` over `0..<count` split into at most `maxChunks` (default `threads`) contiguous
    /// chunks of at least `grain` iterations, concurrently when there is more than one. Boundaries depend only on
    /// the arguments. Threads claim chunks as they come free (`WorkerTeam`), so with more chunks than
    /// threads, a thread that the OS schedules late on a busy machine leaves its share to the others.
    @inline(__always)
    func forChunks(_ count: Int, grain: Int, maxChunks: Int? = nil, _ body: (Int, Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(maxChunks ?? threads, max(1, count / max(grain, 1)))
        if chunks == 1 { body(0, 0..<count); return }
        team.run(chunks: chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(c, lo..<hi) }
        }
    }

    /// Multiply-adds below which a matrix product, a block of row work or the attention of a layer stays on one
    /// thread (a thread hand-off costs microseconds). The tests set it to 0 to run every threaded path on small
    /// models.
    var parallelGEMMWork = 1 << 21
    /// Floats below which an element-wise pass stays on one thread (0 in the tests, as above).
    var parallelElementWork = 1 << 15
    /// Fewest rows per thread for splitting row-local work by rows (each thread takes its block through the whole
    /// chain of products, so threads meet only around attention); fewer rows split each product by columns, with a
    /// meeting point per product. On BLAS each thread then packs every weight matrix itself (OpenBLAS packs the
    /// weights on every call), which pays only with many rows — measured (cofi-bench, 2 threads): BERT-base at
    /// B = 1, T = 128 took 218 ms of CPU split by rows (64 per thread) against 196 ms split by columns. Packed weights
    /// are packed once, so two register tiles of rows per thread suffice: measured (`cofi bench`, 2 threads, AMD
    /// EPYC Zen 4, avx512 family) the demo's compact model at B = 1 went from 0.64 / 1.90 / 6.8 ms at T = 32 / 128 /
    /// 384 (split by columns) to 0.41 / 1.6–1.8 / 5.8–6.0, the CoFi-s95 shape from 1.9–2.3 to 1.5 ms at T = 32,
    /// dense MiniLM and BERT-base within the run-to-run noise (BENCHMARKS.md, issue 15).
    var minRowsPerThread: Int
    /// Chunks per thread for column-split products and attention (cheap to over-split: a column block repacks
    /// only the small activation operand), so that a late thread delays nothing.
    static let chunksPerThread = 2
    /// Whether a call of several sequences may run as groups of whole sequences, one group per thread, with no
    /// meeting point at all (the tests switch it off to check the within-sequence split on the same inputs).
    var allowSequenceGroups = true

    /// c[m, outputs] (leading dimension ldc) = a[m, k] · Wᵀ (+ bias when `addBias`) (then bias + GELU when
    /// `gelu`) for the outputs of W's `segments` (default all), written at their own columns of c (c points at
    /// column 0 of the whole output); a row-major (lda ≥ k). Packed weights run on `PackedGEMM`, arena weights on
    /// BLAS. With `threads` > 1 and enough work, split by column blocks of c (whole panels when packed): each
    /// thread reads all of a and its own outputs of W, and applies the epilogue to its own block.
    func linear(_ a: UnsafePointer<Float>, lda: Int, m: Int, _ layer: EngineWeights.Linear,
                segments: Range<Int>? = nil, addBias: Bool = true, gelu: Bool = false,
                into c: UnsafeMutablePointer<Float>, ldc: Int, threads t: Int) {
        let segs = segments ?? 0..<layer.segments
        let width = layer.segmentWidth, k = layer.k
        let n = segs.count * width, firstColumn = segs.lowerBound * width
        if m == 0 || n == 0 { return }
        let bias = layer.biasPointer!
        let cs = SharedPointer(c)
        let split = t > 1 && m * n * k >= parallelGEMMWork && n >= 32
        if let packed = layer.packed {
            let panels = packed.segmentPanels[segs.lowerBound].lowerBound..<packed.segmentPanels[segs.upperBound - 1].upperBound
            let block = { (ps: Range<Int>) in
                let p0 = panels.lowerBound + ps.lowerBound, p1 = panels.lowerBound + ps.upperBound
                PackedGEMM.multiply(a, lda: lda, m: m, by: packed, panels: p0..<p1, bias: addBias && !gelu ? bias : nil,
                                    into: cs.base, ldc: ldc)
                if gelu {
                    let columns = packed.panelColumn[p0]..<(packed.panelColumn[p1 - 1] + packed.panelOutputs[p1 - 1])
                    EngineKernels.biasGELU(cs.base, ldc: ldc, rows: 0..<m, columns: columns, bias: bias)
                }
            }
            if split && panels.count > 1 {
                forChunks(panels.count, grain: 1, maxChunks: Self.chunksPerThread * t) { _, ps in block(ps) }
            } else {
                block(0..<panels.count)
            }
            return
        }
        let w = layer.weightPointer! + firstColumn * k
        let block = { (cols: Range<Int>) in
            let j0 = firstColumn + cols.lowerBound
            let cb = cs.base + j0
            if addBias && !gelu {
                for r in 0..<m { (cb + r * ldc).update(from: bias + j0, count: cols.count) }
            }
            BLAS.gemmSerial(transA: false, transB: true, m: m, n: cols.count, k: k, a: a, lda: lda,
                            b: w + cols.lowerBound * k, ldb: k, beta: addBias && !gelu ? 1 : 0, c: cb, ldc: ldc)
            if gelu {
                EngineKernels.biasGELU(cs.base, ldc: ldc, rows: 0..<m, columns: j0..<(j0 + cols.count), bias: bias)
            }
        }
        if split {
            forChunks(n, grain: max(16, n / (Self.chunksPerThread * t)), maxChunks: Self.chunksPerThread * t) { _, cols in
                block(cols)
            }
        } else {
            block(0..<n)
        }
    }

    /// x[rows] = LayerNorm(x + y + bias) row by row, split across `threads` when big enough.
    func biasResidualLayerNorm(rows: Range<Int>, bias: Int, gamma: Int, beta: Int, threads t: Int) {
        let D = shape.hiddenSize, w = weights, x = workspace.x, y = workspace.tmp, eps = eps
        let run = { (r: Range<Int>) in
            EngineKernels.biasResidualLayerNorm(x, adding: y, bias: w.at(bias), gamma: w.at(gamma), beta: w.at(beta),
                                                rows: r, width: D, eps: eps)
        }
        if t > 1 && rows.count * D >= parallelElementWork {
            forChunks(rows.count, grain: 1) { _, r in run((rows.lowerBound + r.lowerBound)..<(rows.lowerBound + r.upperBound)) }
        } else {
            run(rows)
        }
    }

    /// Runs the row-local `ops` in order on `rows` of the workspace. With `threads` > 1: by blocks of rows, each
    /// thread taking its block through every op, when there are enough rows; else op by op, each product split
    /// by columns.
    func runRows(_ ops: [RowOp], rows: Range<Int>, threads t: Int) {
        if ops.isEmpty || rows.isEmpty { return }
        let perRow = ops.reduce(0) { $0 + work($1) }
        if t > 1 && rows.count >= 2 * minRowsPerThread && rows.count * perRow >= parallelGEMMWork {
            forChunks(rows.count, grain: minRowsPerThread) { _, r in
                let block = (rows.lowerBound + r.lowerBound)..<(rows.lowerBound + r.upperBound)
                for op in ops { self.apply(op, rows: block, threads: 1) }
            }
        } else {
            for op in ops { apply(op, rows: rows, threads: t) }
        }
    }

    /// One row-local op on `rows`.
    func apply(_ op: RowOp, rows: Range<Int>, threads t: Int) {
        let D = shape.hiddenSize, w = weights, ws = workspace
        let m = rows.count, first = rows.lowerBound
        let x = ws.x + first * D
        switch op {
        case .embed:
            let xs = SharedPointer(ws.x), eps = eps
            let run = { (r: Range<Int>) in
                EngineKernels.embed(ids: ws.ids, positions: ws.positions, types: ws.types, rows: r,
                                    word: w.at(w.wordEmbeddings), position: w.at(w.positionEmbeddings),
                                    type: w.at(w.tokenTypeEmbeddings), gamma: w.at(w.embeddingNormGamma),
                                    beta: w.at(w.embeddingNormBeta), width: D, eps: eps, x: xs.base)
            }
            if t > 1 && m * D >= parallelElementWork {
                forChunks(m, grain: 1) { _, r in run((first + r.lowerBound)..<(first + r.upperBound)) }
            } else {
                run(rows)
            }
        case .queryKeyValue(let l):
            linear(x, lda: D, m: m, w.layers[l].qkv, into: ws.qkv + first * ldQKV, ldc: ldQKV, threads: t)
        case .keyValue(let l):
            linear(x, lda: D, m: m, w.layers[l].qkv, segments: 1..<3, into: ws.qkv + first * ldQKV, ldc: ldQKV, threads: t)
        case .query(let l):
            linear(x, lda: D, m: m, w.layers[l].qkv, segments: 0..<1, into: ws.qkv + first * ldQKV, ldc: ldQKV, threads: t)
        case .attentionOutput(let l):
            let L = w.layers[l]
            linear(ws.ctx + first * maxHeadWidth, lda: maxHeadWidth, m: m, L.attentionOut, addBias: false,
                   into: ws.tmp + first * D, ldc: D, threads: t)
            biasResidualLayerNorm(rows: rows, bias: L.attentionOut.bias, gamma: L.attentionNormGamma,
                                  beta: L.attentionNormBeta, threads: t)
        case .feedForward(let l):
            let L = w.layers[l]
            linear(x, lda: D, m: m, L.intermediate, gelu: true, into: ws.ffn + first * maxFFNWidth, ldc: maxFFNWidth, threads: t)
            linear(ws.ffn + first * maxFFNWidth, lda: maxFFNWidth, m: m, L.ffnOut, addBias: false,
                   into: ws.tmp + first * D, ldc: D, threads: t)
            biasResidualLayerNorm(rows: rows, bias: L.ffnOut.bias, gamma: L.ffnNormGamma, beta: L.ffnNormBeta,
                                  threads: t)
        }
    }

    // MARK: - Forward

    /// The packed forward pass over validated inputs.
    func forward(_ inputs: ArraySlice<EncodedInput>) -> [SequenceOutput] {
        let B = inputs.count
        var N = 0, maxT = 0
        for s in inputs { N += s.tokenIds.count; maxT = max(maxT, s.tokenIds.count) }
        let ws = workspace
        ws.reserve(tokens: N, sequences: B, maxLength: maxT, hidden: shape.hiddenSize, maxHeadWidth: maxHeadWidth,
                   maxFFNWidth: maxFFNWidth, headDim: shape.headDim, poolerWidth: shape.poolerWidth, outputs: task.outputs,
                   scoreSlots: Self.chunksPerThread * threads)

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

        let groups = sequenceGroups(B)
        if groups == 1 {
            runGroup(0..<B, threads: threads, slot: 0)
        } else {
            team.run(chunks: groups) { g in
                self.runGroup(ws.groupBounds[g]..<ws.groupBounds[g + 1], threads: 1, slot: g)
            }
        }
        return outputs(sequences: B)
    }

    /// Splits the B sequences into contiguous groups of about equal cost, one per thread, into
    /// `workspace.groupBounds`, and returns their number — or 1 (one group, threads split the work inside it)
    /// when there are fewer sequences than threads, too little work, or no split within 25 % of even.
    func sequenceGroups(_ B: Int) -> Int {
        let ws = workspace
        ws.groupBounds[0] = 0
        ws.groupBounds[1] = B
        guard allowSequenceGroups && threads > 1 && B >= threads else { return 1 }
        func cost(_ b: Int) -> Int {
            let T = ws.offsets[b + 1] - ws.offsets[b]
            return T * linearWorkPerToken + T * T * attentionWorkPerTokenPair
        }
        var total = 0
        for b in 0..<B { total += cost(b) }
        guard total >= 2 * parallelGEMMWork else { return 1 }
        // Sequence b joins the group whose share of the total holds the midpoint of its cumulative cost.
        var before = 0, group = 0, largest = 0, groupCost = 0
        for b in 0..<B {
            let c = cost(b)
            let g = min(threads - 1, (2 * before + c) * threads / (2 * total))
            before += c
            if g != group {
                largest = max(largest, groupCost)
                for skipped in (group + 1)...g { ws.groupBounds[skipped] = b }
                group = g
                groupCost = 0
            }
            groupCost += c
        }
        largest = max(largest, groupCost)
        for g in (group + 1)...threads { ws.groupBounds[g] = B }
        for g in 0..<threads where ws.groupBounds[g] == ws.groupBounds[g + 1] { return 1 }
        return largest * 4 <= total * 5 / threads ? threads : 1
    }

    /// Runs the program on the sequences `seqs` (rows offsets[seqs.first] ..< offsets[seqs.end]) with `threads`
    /// threads inside it; `slot` picks the attention scratch of a group running on its own thread. After the cut
    /// to [CLS] rows, sequence b's row is r0 + (b − seqs.first), r0 the group's first row.
    func runGroup(_ seqs: Range<Int>, threads t: Int, slot: Int) {
        let ws = workspace, D = shape.hiddenSize
        let r0 = ws.offsets[seqs.lowerBound]
        var live = r0..<ws.offsets[seqs.upperBound]
        for step in program {
            switch step {
            case .rows(let ops):
                runRows(ops, rows: live, threads: t)
            case .cutToCLS:
                for b in seqs {
                    let src = ws.offsets[b], dst = r0 + b - seqs.lowerBound
                    if src != dst { (ws.x + dst * D).update(from: ws.x + src * D, count: D) }
                }
                live = r0..<(r0 + seqs.count)
            case .attention(let l, let cls):
                attention(layer: l, sequences: seqs, clsQueries: cls, threads: t, slot: slot)
            }
        }
        head(sequences: seqs, rows: live, threads: t)
    }

    /// Multi-head attention of each sequence in `seqs` on its own rows: ctx[row, h·Dh…] = softmax(q kᵀ/√Dh) v per
    /// (sequence, head), reading Q | K | V side by side from qkv ([·, 3·H·Dh]). With `clsQueries`, sequence b has
    /// one query, at its [CLS] row after the cut, and its context goes to that row of ctx. With `threads` > 1, the
    /// work items (sequence, head, query block) are split across threads in contiguous runs of equal cost.
    func attention(layer l: Int, sequences seqs: Range<Int>, clsQueries: Bool, threads t: Int, slot: Int) {
        let H = weights.layers[l].heads, Dh = shape.headDim, HD = H * Dh, ld = ldQKV, ldCtx = maxHeadWidth
        let scale = 1 / Float(Dh).squareRoot()
        let ws = workspace, qkv = ws.qkv
        let offsets = ws.offsets
        let s0 = seqs.lowerBound, r0 = offsets[s0]
        let pairs = seqs.count * H
        // Split the queries of a (sequence, head) pair only when there are fewer pairs than chunks.
        let wanted = Self.chunksPerThread * t
        let blocks = !clsQueries && t > 1 && pairs < wanted ? (wanted + pairs - 1) / pairs : 1
        let items = pairs * blocks
        func queryRange(_ b: Int, _ blk: Int) -> Range<Int> {
            if clsQueries { return 0..<1 }
            let T = offsets[b + 1] - offsets[b]
            return (T * blk / blocks)..<(T * (blk + 1) / blocks)
        }
        func cost(_ item: Int) -> Int {
            let b = s0 + item / blocks / H
            return queryRange(b, item % blocks).count * (offsets[b + 1] - offsets[b])
        }
        var total = 0
        for i in 0..<items { total += cost(i) }
        let chunks = t > 1 && total * Dh * 2 >= parallelGEMMWork ? min(Self.chunksPerThread * t, items) : 1
        let ctx = SharedPointer(ws.ctx)
        let body: (Int) -> Void = { c in
            let scores = ws.scores + (chunks == 1 ? slot : c) * ws.scoreStride
            let packed = self.weights.packed ? ws.packScratch + (chunks == 1 ? slot : c) * ws.packStride : nil
            // This chunk takes the items whose cumulative cost midpoint falls in its share of the total.
            var before = 0
            for i in 0..<items {
                let ci = cost(i)
                let mid = 2 * before + ci  // 2 × midpoint
                before += ci
                guard mid * chunks >= 2 * total * c && mid * chunks < 2 * total * (c + 1) else { continue }
                let pair = i / blocks, b = s0 + pair / H, h = pair % H
                let q = queryRange(b, i % blocks)
                if q.isEmpty { continue }
                let first = offsets[b], T = offsets[b + 1] - first
                let qRow = clsQueries ? r0 + b - s0 : first + q.lowerBound
                EngineKernels.attentionHead(q: qkv + qRow * ld + h * Dh, ldq: ld, queries: q.count,
                                            k: qkv + first * ld + HD + h * Dh, v: qkv + first * ld + 2 * HD + h * Dh,
                                            ldkv: ld, keys: T, headDim: Dh, scale: scale, scores: scores,
                                            ctx: ctx.base + qRow * ldCtx + h * Dh, ldctx: ldCtx, packed: packed)
            }
        }
        team.run(chunks: chunks, body)
    }

    /// The task head on the group's final rows: pooled heads read one [CLS] row per sequence (pooled row and
    /// logits row b); the span head reads every token row (logits row = token row).
    func head(sequences seqs: Range<Int>, rows: Range<Int>, threads t: Int) {
        let D = shape.hiddenSize, w = weights, ws = workspace, C = task.outputs
        let x = ws.x + rows.lowerBound * D
        if task.usesPooler {
            let Pw = shape.poolerWidth, m = seqs.count
            let pooled = ws.pooled + seqs.lowerBound * Pw
            linear(x, lda: D, m: m, w.pooler!, into: pooled, ldc: Pw, threads: t)
            for i in 0..<(m * Pw) { pooled[i] = Foundation.tanh(pooled[i]) }
            linear(pooled, lda: Pw, m: m, w.head, into: ws.logits + seqs.lowerBound * C, ldc: C, threads: t)
        } else {
            linear(x, lda: D, m: rows.count, w.head, into: ws.logits + rows.lowerBound * 2, ldc: 2, threads: t)
        }
    }

    /// One output per sequence from the logits buffer.
    func outputs(sequences B: Int) -> [SequenceOutput] {
        let ws = workspace, C = task.outputs
        if task.usesPooler {
            return (0..<B).map { b in SequenceOutput(logits: Array(UnsafeBufferPointer(start: ws.logits + b * C, count: C))) }
        }
        return (0..<B).map { b in
            let r = ws.offsets[b]..<ws.offsets[b + 1]
            return SequenceOutput(logits: [], startLogits: r.map { ws.logits[2 * $0] },
                                  endLogits: r.map { ws.logits[2 * $0 + 1] })
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
    /// Per-slot packing scratch of the attention products (`EngineKernels.packedScratchCount`).
    var packScratch = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var pooled = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var logits = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var ids = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    var types = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    var positions = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    var offsets = UnsafeMutablePointer<Int>.allocate(capacity: 2)
    /// Sequence bounds of the groups that run on their own threads ([workers + 1]).
    var groupBounds = UnsafeMutablePointer<Int>.allocate(capacity: 2)
    /// Floats of score scratch per attention chunk or sequence group (the longest sequence squared), and of
    /// packing scratch.
    var scoreStride = 0, packStride = 0
    /// Times the buffers were (re)allocated; the tests check that a smaller call reuses them.
    private(set) var allocations = 0

    /// Makes every buffer big enough for `tokens` packed rows of `sequences` sequences no longer than
    /// `maxLength`; reallocates only when a capacity grows.
    func reserve(tokens N: Int, sequences B: Int, maxLength T: Int, hidden D: Int, maxHeadWidth HD: Int,
                 maxFFNWidth I: Int, headDim Dh: Int, poolerWidth Pw: Int, outputs C: Int, scoreSlots: Int) {
        if N <= tokenCapacity && B <= sequenceCapacity && T <= lengthCapacity { return }
        let n = max(N, tokenCapacity), b = max(B, sequenceCapacity), t = max(T, lengthCapacity)
        release()
        x = .allocate(capacity: n * D)
        qkv = .allocate(capacity: max(1, n * 3 * HD))
        ctx = .allocate(capacity: max(1, n * HD))
        ffn = .allocate(capacity: max(1, n * I))
        tmp = .allocate(capacity: n * D)
        scoreStride = t * t
        scores = .allocate(capacity: scoreSlots * scoreStride)
        packStride = EngineKernels.packedScratchCount(keys: t, headDim: Dh)
        packScratch = .allocate(capacity: max(1, scoreSlots * packStride))
        pooled = .allocate(capacity: b * Pw)
        logits = .allocate(capacity: max(2 * n, b * C))
        ids = .allocate(capacity: n)
        types = .allocate(capacity: n)
        positions = .allocate(capacity: n)
        offsets = .allocate(capacity: b + 1)
        groupBounds = .allocate(capacity: scoreSlots + 1)
        tokenCapacity = n
        sequenceCapacity = b
        lengthCapacity = t
        allocations += 1
    }

    private func release() {
        x.deallocate(); qkv.deallocate(); ctx.deallocate(); ffn.deallocate(); tmp.deallocate()
        scores.deallocate(); packScratch.deallocate(); pooled.deallocate(); logits.deallocate()
        ids.deallocate(); types.deallocate(); positions.deallocate(); offsets.deallocate()
        groupBounds.deallocate()
    }

    deinit { release() }
}

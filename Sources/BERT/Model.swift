import Tensor

/// The BERT encoder with CoFi's mask hooks, and its task heads. Every layer has its own shape (`BertShape`).
/// Stored properties are the sub-modules and parameters, named as in Hugging Face checkpoints.

/// y = x·Wᵀ + b with W [out, in].
public struct Linear {
    public let weight: Variable
    public let bias: Variable
    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }
    public func callAsFunction(_ x: Variable) -> Variable { linear(x, weight: weight, bias: bias) }
}

/// LayerNorm gain (`weight`) and bias.
public struct LayerNormWeights {
    public let weight: Variable
    public let bias: Variable
}

/// word + position + token-type embeddings, then LayerNorm and dropout.
public struct BertEmbeddings {
    public let wordEmbeddings: Variable       // [V, D]
    public let positionEmbeddings: Variable   // [P, D]
    public let tokenTypeEmbeddings: Variable  // [types, D]
    public let layerNorm: LayerNormWeights
}

/// Multi-head self-attention plus its output projection and LayerNorm (`attention.self` + `attention.output`).
public struct BertAttention {
    public let heads: Int
    public let query: Linear, key: Linear, value: Linear  // [H·Dh, D]
    public let output: Linear                             // [D, H·Dh]
    public let layerNorm: LayerNormWeights
}

/// The FFN: `intermediate.dense` (D → I, GELU) and `output.dense` (I → D) with its LayerNorm.
public struct BertFeedForward {
    public let intermediate: Linear
    public let output: Linear
    public let layerNorm: LayerNormWeights
}

/// One encoder layer; a nil sublayer is the identity.
public struct BertLayer {
    public let attention: BertAttention?
    public let feedForward: BertFeedForward?
}

/// What the model is asked to predict.
public enum TaskHeadKind: Equatable, Sendable {
    /// Sequence classification into `labels` classes (pooler → dropout → linear).
    case classification(labels: Int)
    /// Sequence regression (one output; STS-B style).
    case regression
    /// Extractive QA: start and end logits per token.
    case span

    /// Output width of the head's linear layer.
    public var outputs: Int {
        switch self {
        case .classification(let n): return n
        case .regression: return 1
        case .span: return 2
        }
    }

    /// The checkpoint prefix of the head's linear layer (`CheckpointKeys.head`).
    public var checkpointPrefix: String { CheckpointKeys.head(self).path }

    /// Whether the head reads the pooler output (sequence-level tasks).
    public var usesPooler: Bool { self != .span }
}

/// A batch of token ids [B, T], row-major, with the attention mask (1 real, 0 padding) and token types.
public struct BertBatch {
    public let batch: Int
    public let seqLen: Int
    public let inputIds: [Int]
    public let attentionMask: [Int]
    public let tokenTypeIds: [Int]

    public init(batch: Int, seqLen: Int, inputIds: [Int], attentionMask: [Int]? = nil, tokenTypeIds: [Int]? = nil) {
        precondition(inputIds.count == batch * seqLen, "inputIds must hold batch × seqLen ids")
        self.batch = batch
        self.seqLen = seqLen
        self.inputIds = inputIds
        self.attentionMask = attentionMask ?? Array(repeating: 1, count: batch * seqLen)
        self.tokenTypeIds = tokenTypeIds ?? Array(repeating: 0, count: batch * seqLen)
        precondition(self.attentionMask.count == inputIds.count && self.tokenTypeIds.count == inputIds.count,
                     "attentionMask and tokenTypeIds must match inputIds")
    }

    /// The rows `range` of this batch (a data-parallel rank's shard), padded to the same length.
    public func rows(_ range: Range<Int>) -> BertBatch {
        precondition(range.lowerBound >= 0 && range.upperBound <= batch, "rows \(range) of a batch of \(batch)")
        let span = (range.lowerBound * seqLen)..<(range.upperBound * seqLen)
        return BertBatch(batch: range.count, seqLen: seqLen, inputIds: Array(inputIds[span]),
                         attentionMask: Array(attentionMask[span]), tokenTypeIds: Array(tokenTypeIds[span]))
    }
}

/// Dropout switch and its random stream for one forward pass.
public struct ForwardMode {
    public var training: Bool
    public var rng: Xoshiro256
    /// Where the batch lies in a larger one (a data-parallel rank's rows of the global batch): dropout then gives
    /// each row the keep pattern it has when one process runs the whole batch. Nil: the batch is the whole batch.
    public var rows: RowSlice?
    /// Run on the real tokens only (`PackedSequences`) where the outputs asked for allow it: a sequence-level
    /// head (its logits read the first token of each sequence) and a batch with padding whose sequences all start
    /// with a real token. The logits are those of the padded batch up to rounding; the hidden states are then
    /// [N, D], the packed rows (`BertOutput.packed`).
    public var packsTokens: Bool
    /// Evaluation: no dropout.
    public static var inference: ForwardMode { ForwardMode(training: false, rng: Xoshiro256(seed: 0)) }
    public init(training: Bool, rng: Xoshiro256, rows: RowSlice? = nil, packsTokens: Bool = false) {
        self.training = training
        self.rng = rng
        self.rows = rows
        self.packsTokens = packsTokens
    }
}

/// The outputs of a forward pass.
public struct BertOutput {
    /// [embeddings, layer 1, …, layer L], each [B·T, D] (after the hidden mask, as CoFi distils them), or
    /// [N, D] when the pass ran on packed tokens (`packed`).
    public var hiddenStates: [Variable]
    /// The packed tokens the hidden states hold, or nil when they are the padded batch's rows.
    public var packed: PackedSequences?
    /// Pooler output [B, poolerWidth], for sequence-level heads.
    public var pooled: Variable?
    /// Classification / regression logits [B, C], or nil for the span head.
    public var logits: Variable?
    /// Span head: start and end logits, each [B, T].
    public var startLogits: Variable?
    public var endLogits: Variable?
}

/// A BERT encoder with an optional pooler and task head.
public final class BertModel {
    public let config: BertConfig
    public let shape: BertShape
    public let embeddings: BertEmbeddings
    public let layers: [BertLayer]
    public let pooler: Linear?
    public let head: Linear?
    public let task: TaskHeadKind?

    public init(config: BertConfig, shape: BertShape, embeddings: BertEmbeddings, layers: [BertLayer],
                pooler: Linear?, head: Linear?, task: TaskHeadKind?) {
        precondition(layers.count == shape.layers.count, "layer count does not match the shape")
        self.config = config
        self.shape = shape
        self.embeddings = embeddings
        self.layers = layers
        self.pooler = pooler
        self.head = head
        self.task = task
    }

    var eps: Float { Float(config.layerNormEps) }

    /// Runs the encoder (and head, if any) on `batch`, with CoFi `masks` applied where cofi-spec §1 puts them.
    public func callAsFunction(_ batch: BertBatch, masks: MaskSet? = nil, mode: inout ForwardMode) -> BertOutput {
        let B = batch.batch, T = batch.seqLen
        precondition(T <= shape.maxPositions, "sequence length \(T) exceeds max_position_embeddings \(shape.maxPositions)")
        let hiddenP = mode.training ? Float(config.hiddenDropoutProb) : 0
        let attentionP = mode.training ? Float(config.attentionProbsDropoutProb) : 0
        let zHidden = masks?.hidden
        let keep = masks?.hiddenKeep

        // Packed: the real tokens only, when the outputs asked for allow it (`ForwardMode.packsTokens`).
        let packed = packsTokens(in: mode)
            ? PackedSequences(attentionMask: batch.attentionMask, batch: B, seqLen: T) : nil

        // Embeddings: word + position + token type → (⊙z) → LayerNorm → dropout → (⊙z).
        let positions = packed?.positions ?? (0..<(B * T)).map { $0 % T }
        var x = embedding(embeddings.wordEmbeddings, ids: packed?.gather(batch.inputIds) ?? batch.inputIds)
            + embedding(embeddings.positionEmbeddings, ids: positions)
            + embedding(embeddings.tokenTypeEmbeddings, ids: packed?.gather(batch.tokenTypeIds) ?? batch.tokenTypeIds)
        x = x.masked(by: zHidden)
        x = layerNorm(x, gamma: embeddings.layerNorm.weight, beta: embeddings.layerNorm.bias, eps: eps, keep: keep)
        x = dropout(x, p: hiddenP, rng: &mode.rng, rows: mode.rows, packed: packed).masked(by: zHidden)
        var hiddenStates = [x]

        /// The end of each sublayer: ⊙z_hidn → dropout → LayerNorm(sublayer + residual) over the kept dims → ⊙z_hidn.
        func addAndNorm(_ sublayer: Variable, _ residual: Variable, _ norm: LayerNormWeights) -> Variable {
            let s = dropout(sublayer.masked(by: zHidden), p: hiddenP, rng: &mode.rng, rows: mode.rows, packed: packed)
            return layerNorm(s + residual, gamma: norm.weight, beta: norm.bias, eps: eps, keep: keep).masked(by: zHidden)
        }

        // (1 − mask)·(−10000) added to the scores of padding keys; nothing to add when every token is real.
        let additive: [Float]? = packed != nil || batch.attentionMask.allSatisfy { $0 != 0 }
            ? nil : batch.attentionMask.map { Float(1 - $0) * -10000 }
        for (l, layer) in layers.enumerated() {
            if let att = layer.attention, !(masks?.attentionIsOff(layer: l) ?? false) {
                let q = att.query(x), k = att.key(x), v = att.value(x)
                let ctx = packed.map {
                    attention(q: q, k: k, v: v, packed: $0, heads: att.heads, headDim: shape.headDim,
                              dropout: attentionP, rng: &mode.rng, rows: mode.rows)
                } ?? attention(q: q, k: k, v: v, batch: B, seqLen: T, heads: att.heads, headDim: shape.headDim,
                               additiveMask: additive, dropout: attentionP, rng: &mode.rng, rows: mode.rows)
                let a = att.output(ctx.masked(by: masks?.heads[l])).masked(by: masks?.attentionLayers[l])
                x = addAndNorm(a, x, att.layerNorm)
            }
            if let ffn = layer.feedForward, !(masks?.ffnIsOff(layer: l) ?? false) {
                let u = gelu(ffn.intermediate(x)).masked(by: masks?.intermediate[l])
                let f = ffn.output(u).masked(by: masks?.ffnLayers[l])
                x = addAndNorm(f, x, ffn.layerNorm)
            }
            hiddenStates.append(x)
        }

        var out = BertOutput(hiddenStates: hiddenStates, packed: packed)
        if let pooler, task?.usesPooler ?? true {
            out.pooled = tanh(pooler(x.gatherRows(packed?.firstRows ?? (0..<B).map { $0 * T })))
        }
        guard let task, let head else { return out }
        if task.usesPooler {
            guard let pooled = out.pooled else { preconditionFailure("a sequence-level head needs the pooler") }
            let classifierP = mode.training ? Float(config.classifierDropout ?? config.hiddenDropoutProb) : 0
            out.logits = head(dropout(pooled, p: classifierP, rng: &mode.rng, rows: mode.rows))
        } else {
            let logits = head(x)  // [B·T, 2]
            out.startLogits = logits.column(0).reshaped([B, T])
            out.endLogits = logits.column(1).reshaped([B, T])
        }
        return out
    }

    /// Whether a pass in `mode` runs on packed tokens where the batch has padding to skip (`PackedSequences` decides
    /// that part): the mode asks for it and the head reads only each sequence's first token.
    public func packsTokens(in mode: ForwardMode) -> Bool { mode.packsTokens && task?.usesPooler == true }

    /// Every parameter with its Hugging Face task-model name (`CheckpointKeys`: encoder under `bert.`, head
    /// under `classifier.` or `qa_outputs.`), in a fixed order: embeddings, then each layer's attention and FFN
    /// (weight before bias), pooler, head. Optimizer state and training checkpoints depend on this order.
    public var namedParameters: [(String, Variable)] {
        var p: [(String, Variable)] = []
        func lin(_ key: CheckpointKey, _ l: Linear) { p += [(key.weight, l.weight), (key.bias, l.bias)] }
        func ln(_ key: CheckpointKey, _ n: LayerNormWeights) { p += [(key.weight, n.weight), (key.bias, n.bias)] }
        p.append((CheckpointKeys.wordEmbeddings.weight, embeddings.wordEmbeddings))
        p.append((CheckpointKeys.positionEmbeddings.weight, embeddings.positionEmbeddings))
        p.append((CheckpointKeys.tokenTypeEmbeddings.weight, embeddings.tokenTypeEmbeddings))
        ln(CheckpointKeys.embeddingNorm, embeddings.layerNorm)
        for (l, layer) in layers.enumerated() {
            let k = CheckpointKeys.layer(l)
            if let a = layer.attention {
                lin(k.query, a.query)
                lin(k.key, a.key)
                lin(k.value, a.value)
                lin(k.attentionOutput, a.output)
                ln(k.attentionNorm, a.layerNorm)
            }
            if let f = layer.feedForward {
                lin(k.intermediate, f.intermediate)
                lin(k.output, f.output)
                ln(k.outputNorm, f.layerNorm)
            }
        }
        if let pooler { lin(CheckpointKeys.pooler, pooler) }
        if let head, let task { lin(CheckpointKeys.head(task), head) }
        return p
    }
}

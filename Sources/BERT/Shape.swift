/// The shape of one encoder layer: its number of attention heads (0: no attention sublayer, the layer passes
/// its input straight to the FFN) and its FFN width (0: no FFN sublayer).
public struct LayerShape: Equatable, Codable, Sendable {
    public var heads: Int
    public var ffnWidth: Int
    public init(heads: Int, ffnWidth: Int) {
        self.heads = heads
        self.ffnWidth = ffnWidth
    }
}

/// The full shape of a (possibly pruned) BERT encoder: every layer has its own heads and FFN width, and the
/// residual stream its own hidden width. A dense model is the uniform case built from `BertConfig`.
public struct BertShape: Equatable, Codable, Sendable {
    public var vocabSize: Int
    public var hiddenSize: Int
    /// Width of one attention head (unchanged by pruning: CoFi removes whole heads).
    public var headDim: Int
    public var maxPositions: Int
    public var typeVocabSize: Int
    public var layers: [LayerShape]
    /// Output width of the pooler (stays at the dense hidden size when hidden dims are pruned, cofi-spec §7.2).
    public var poolerWidth: Int

    public init(vocabSize: Int, hiddenSize: Int, headDim: Int, maxPositions: Int, typeVocabSize: Int,
                layers: [LayerShape], poolerWidth: Int? = nil) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.headDim = headDim
        self.maxPositions = maxPositions
        self.typeVocabSize = typeVocabSize
        self.layers = layers
        self.poolerWidth = poolerWidth ?? hiddenSize
    }

    /// The dense shape that `config` describes.
    public init(config c: BertConfig) {
        self.init(vocabSize: c.vocabSize, hiddenSize: c.hiddenSize, headDim: c.headDim,
                  maxPositions: c.maxPositionEmbeddings, typeVocabSize: c.typeVocabSize,
                  layers: Array(repeating: LayerShape(heads: c.numAttentionHeads, ffnWidth: c.intermediateSize),
                                count: c.numHiddenLayers))
    }

    /// Parameters of layer l's attention sublayer counted as cofi-spec decision 1 does (Q, K, V, O weights and
    /// biases; LayerNorm excluded): 4·d·(H·d_h) + 3·H·d_h + d, or 0 without heads.
    public func attentionPrunableParameters(layer l: Int) -> Int {
        let hd = layers[l].heads * headDim
        return hd == 0 ? 0 : 4 * hiddenSize * hd + 3 * hd + hiddenSize
    }

    /// Parameters of layer l's FFN counted as cofi-spec decision 1 does: 2·d·I + I + d, or 0 without an FFN.
    public func ffnPrunableParameters(layer l: Int) -> Int {
        let i = layers[l].ffnWidth
        return i == 0 ? 0 : 2 * hiddenSize * i + i + hiddenSize
    }

    /// The prunable size of cofi-spec §3 for this shape: encoder linear weights and biases of every layer.
    /// For the dense shape of a config this is M, the size the target sparsity refers to.
    public var prunableParameters: Int {
        layers.indices.reduce(0) { $0 + attentionPrunableParameters(layer: $1) + ffnPrunableParameters(layer: $1) }
    }

    /// Every encoder-layer parameter, LayerNorms included (what the paper and `evaluation.py` count).
    public var encoderParameters: Int {
        layers.indices.reduce(0) { total, l in
            total + attentionPrunableParameters(layer: l) + (layers[l].heads > 0 ? 2 * hiddenSize : 0)
                + ffnPrunableParameters(layer: l) + (layers[l].ffnWidth > 0 ? 2 * hiddenSize : 0)
        }
    }

    /// Word, position and token-type tables plus the embedding LayerNorm.
    public var embeddingParameters: Int {
        (vocabSize + maxPositions + typeVocabSize) * hiddenSize + 2 * hiddenSize
    }

    /// The pooler's dense layer.
    public var poolerParameters: Int { poolerWidth * hiddenSize + poolerWidth }

    /// Forward FLOPs (2 per multiply-add) of the encoder for one sequence of `tokens` tokens: the linear
    /// layers plus the two attention products.
    public func forwardFLOPs(tokens T: Int) -> Double {
        var f = 0.0
        for l in layers {
            let hd = Double(l.heads * headDim), d = Double(hiddenSize), t = Double(T)
            f += 2 * t * d * hd * 4 + 2 * 2 * t * t * hd
            f += 2 * t * d * Double(l.ffnWidth) * 2
        }
        return f
    }
}

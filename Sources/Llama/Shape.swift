/// The shape of one decoder layer: its KV heads (each with its group of G query heads; 0: no attention
/// sublayer, the residual passes unchanged) and its FFN width (0: no FFN sublayer).
public struct LlamaLayerShape: Equatable, Codable, Sendable {
    public var kvHeads: Int
    public var ffnWidth: Int
    public init(kvHeads: Int, ffnWidth: Int) {
        self.kvHeads = kvHeads
        self.ffnWidth = ffnWidth
    }
}

/// The full shape of a (possibly pruned) LLaMA decoder. Pruning removes whole KV groups (a KV head with its G query
/// heads, so grouped-query attention keeps every query head tied to its KV head) and FFN units, layer by layer; the
/// dense model is the uniform case built from `LlamaConfig`.
public struct LlamaShape: Equatable, Codable, Sendable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var headDim: Int
    /// Query heads per KV head, G (the same in every layer).
    public var groupSize: Int
    public var layers: [LlamaLayerShape]
    /// Whether the output layer is the embedding table.
    public var tiedEmbeddings: Bool

    public init(vocabSize: Int, hiddenSize: Int, headDim: Int, groupSize: Int, layers: [LlamaLayerShape],
                tiedEmbeddings: Bool) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.headDim = headDim
        self.groupSize = groupSize
        self.layers = layers
        self.tiedEmbeddings = tiedEmbeddings
    }

    /// The dense shape that `config` describes.
    public init(config c: LlamaConfig) {
        self.init(vocabSize: c.vocabSize, hiddenSize: c.hiddenSize, headDim: c.headDim, groupSize: c.groupSize,
                  layers: Array(repeating: LlamaLayerShape(kvHeads: c.numKeyValueHeads, ffnWidth: c.intermediateSize),
                                count: c.numHiddenLayers),
                  tiedEmbeddings: c.tieWordEmbeddings)
    }

    /// Query heads of layer l, Hkv · G.
    public func queryHeads(layer l: Int) -> Int { layers[l].kvHeads * groupSize }

    /// Parameters of layer l's attention sublayer: Q and O (D × Hq·Dh each), K and V (D × Hkv·Dh each) and the
    /// RMSNorm in front of it (D); 0 without heads.
    public func attentionParameters(layer l: Int) -> Int {
        let kv = layers[l].kvHeads * headDim
        return kv == 0 ? 0 : 2 * hiddenSize * kv * groupSize + 2 * hiddenSize * kv + hiddenSize
    }

    /// Parameters of layer l's FFN: gate, up and down (3 · D · I) and its RMSNorm (D); 0 without an FFN.
    public func ffnParameters(layer l: Int) -> Int {
        let i = layers[l].ffnWidth
        return i == 0 ? 0 : 3 * hiddenSize * i + hiddenSize
    }

    /// Every parameter: embeddings, the layers, the final RMSNorm, and the output layer unless tied.
    public var parameterCount: Int {
        let embeddings = vocabSize * hiddenSize
        let body = layers.indices.reduce(0) { $0 + attentionParameters(layer: $1) + ffnParameters(layer: $1) }
        return embeddings + body + hiddenSize + (tiedEmbeddings ? 0 : embeddings)
    }
}

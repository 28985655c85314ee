/// The engine's copy of a model's parameters: one allocation (the arena) with named offsets into it, in the
/// layout the forward pass reads. Linear weights stay [out, in] row-major; a layer's query, key and value
/// projections are stacked into one [3·H·Dh, D] weight (Q rows, then K rows, then V rows) with one bias, so the
/// three projections are one matrix product and the key + value rows are contiguous.
struct EngineWeights {
    /// Offsets (in floats) of one layer's parameters in the arena; `heads == 0` / `ffnWidth == 0` mark a
    /// missing sublayer, whose offsets are unused.
    struct Layer {
        var heads = 0
        var qkvWeight = 0, qkvBias = 0            // [3·H·Dh, D], [3·H·Dh]
        var attentionOutWeight = 0, attentionOutBias = 0  // [D, H·Dh], [D]
        var attentionNormGamma = 0, attentionNormBeta = 0
        var ffnWidth = 0
        var intermediateWeight = 0, intermediateBias = 0  // [I, D], [I]
        var ffnOutWeight = 0, ffnOutBias = 0      // [D, I], [D]
        var ffnNormGamma = 0, ffnNormBeta = 0
    }

    let arena: UnsafeMutablePointer<Float>
    let count: Int
    var wordEmbeddings = 0, positionEmbeddings = 0, tokenTypeEmbeddings = 0  // [V, D], [P, D], [S, D]
    var embeddingNormGamma = 0, embeddingNormBeta = 0
    var layers: [Layer] = []
    var poolerWeight: Int?, poolerBias: Int?   // [Pw, D], [Pw]; nil for the span head
    var headWeight = 0, headBias = 0           // [C, Pw] or [2, D], [C]

    /// Copies every parameter of `model` (which has a head) into a fresh arena.
    init(model: BertModel) {
        var tensors: [Tensor] = []
        var total = 0
        func place(_ parts: [Tensor]) -> Int {
            let offset = total
            for t in parts { tensors.append(t); total += t.count }
            return offset
        }
        let e = model.embeddings
        wordEmbeddings = place([e.wordEmbeddings.value])
        positionEmbeddings = place([e.positionEmbeddings.value])
        tokenTypeEmbeddings = place([e.tokenTypeEmbeddings.value])
        embeddingNormGamma = place([e.layerNorm.weight.value])
        embeddingNormBeta = place([e.layerNorm.bias.value])
        for layer in model.layers {
            var l = Layer()
            if let a = layer.attention {
                l.heads = a.heads
                l.qkvWeight = place([a.query.weight.value, a.key.weight.value, a.value.weight.value])
                l.qkvBias = place([a.query.bias.value, a.key.bias.value, a.value.bias.value])
                l.attentionOutWeight = place([a.output.weight.value])
                l.attentionOutBias = place([a.output.bias.value])
                l.attentionNormGamma = place([a.layerNorm.weight.value])
                l.attentionNormBeta = place([a.layerNorm.bias.value])
            }
            if let f = layer.feedForward {
                l.ffnWidth = f.intermediate.outFeatures
                l.intermediateWeight = place([f.intermediate.weight.value])
                l.intermediateBias = place([f.intermediate.bias.value])
                l.ffnOutWeight = place([f.output.weight.value])
                l.ffnOutBias = place([f.output.bias.value])
                l.ffnNormGamma = place([f.layerNorm.weight.value])
                l.ffnNormBeta = place([f.layerNorm.bias.value])
            }
            layers.append(l)
        }
        if let p = model.pooler, model.task?.usesPooler ?? false {
            poolerWeight = place([p.weight.value])
            poolerBias = place([p.bias.value])
        }
        if let h = model.head {
            headWeight = place([h.weight.value])
            headBias = place([h.bias.value])
        }
        count = total
        arena = UnsafeMutablePointer<Float>.allocate(capacity: max(total, 1))
        var at = 0
        for t in tensors where t.count > 0 {
            t.scalars.withUnsafeBufferPointer { (arena + at).update(from: $0.baseAddress!, count: t.count) }
            at += t.count
        }
    }

    /// The parameter at `offset`.
    @inline(__always) func at(_ offset: Int) -> UnsafeMutablePointer<Float> { arena + offset }

    func deallocate() { arena.deallocate() }
}

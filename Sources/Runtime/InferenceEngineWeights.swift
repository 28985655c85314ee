import BERT
import PackedGEMM
import Tensor

/// The engine's copy of a model's parameters: one allocation (the arena) with named offsets into it, in the
/// layout the forward pass reads, and the linear layers' weights either in the arena ([out, in] row-major, for
/// BLAS) or packed once for `PackedGEMM` (`packed`). A layer's query, key and value projections are stacked into
/// one [3·H·Dh, D] weight (Q rows, then K rows, then V rows; three segments when packed) with one bias, so the
/// three projections are one matrix product and the key + value rows are contiguous.
struct EngineWeights {
    /// One linear layer: y = x · Wᵀ + b with W [n, k], as `segments` equal blocks of outputs (3 for Q | K | V,
    /// else 1) that can run alone.
    struct Linear {
        var n = 0, k = 0, segments = 1
        /// Arena offsets of W (unused when packed) and b.
        var weight = 0, bias = 0
        var packed: PackedMatrix?
        /// W (nil when packed) and b, set once the arena exists.
        var weightPointer: UnsafePointer<Float>?
        var biasPointer: UnsafePointer<Float>?

        /// Sets the pointers from the offsets.
        mutating func resolve(in arena: UnsafeMutablePointer<Float>) {
            weightPointer = packed == nil ? UnsafePointer(arena + weight) : nil
            biasPointer = UnsafePointer(arena + bias)
        }
        /// Outputs per segment.
        var segmentWidth: Int { segments > 0 ? n / segments : 0 }
    }

    /// One layer's parameters; `heads == 0` / `ffnWidth == 0` mark a missing sublayer, whose entries are unused.
    struct Layer {
        var heads = 0
        var qkv = Linear()                        // [3·H·Dh, D], [3·H·Dh]
        var attentionOut = Linear()               // [D, H·Dh], [D]
        var attentionNormGamma = 0, attentionNormBeta = 0
        var ffnWidth = 0
        var intermediate = Linear()               // [I, D], [I]
        var ffnOut = Linear()                     // [D, I], [D]
        var ffnNormGamma = 0, ffnNormBeta = 0
    }

    let arena: UnsafeMutablePointer<Float>
    let count: Int
    /// Whether the linear weights are packed for `PackedGEMM` (else they are in the arena, for BLAS).
    let packed: Bool
    var wordEmbeddings = 0, positionEmbeddings = 0, tokenTypeEmbeddings = 0  // [V, D], [P, D], [S, D]
    var embeddingNormGamma = 0, embeddingNormBeta = 0
    var layers: [Layer] = []
    var pooler: Linear?                        // [Pw, D], [Pw]; nil for the span head
    var head = Linear()                        // [C, Pw] or [2, D], [C]

    /// Copies every parameter of `model` (which has a head) into a fresh arena, packing the linear weights
    /// when `packed`.
    init(model: BertModel, packed: Bool) {
        self.packed = packed
        var tensors: [Tensor] = []
        var total = 0
        func place(_ parts: [Tensor]) -> Int {
            let offset = total
            for t in parts { tensors.append(t); total += t.count }
            return offset
        }
        /// A linear layer from stacked weights [n_i, k] and their biases.
        func linear(_ weights: [Tensor], _ biases: [Tensor]) -> Linear {
            var l = Linear()
            l.k = weights[0].shape[1]
            l.n = weights.reduce(0) { $0 + $1.shape[0] }
            l.segments = weights.count
            if packed {
                let stacked = weights.flatMap(\.scalars), k = l.k
                l.packed = stacked.withUnsafeBufferPointer { all in
                    var start = 0
                    let segments = weights.map { w -> (weights: UnsafePointer<Float>, rows: Int) in
                        defer { start += w.count }
                        return (all.baseAddress! + start, w.shape[0])
                    }
                    return PackedMatrix(k: k, segments: segments)
                }
            } else {
                l.weight = place(weights)
            }
            l.bias = place(biases)
            return l
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
                l.qkv = linear([a.query.weight.value, a.key.weight.value, a.value.weight.value],
                               [a.query.bias.value, a.key.bias.value, a.value.bias.value])
                l.attentionOut = linear([a.output.weight.value], [a.output.bias.value])
                l.attentionNormGamma = place([a.layerNorm.weight.value])
                l.attentionNormBeta = place([a.layerNorm.bias.value])
            }
            if let f = layer.feedForward {
                l.ffnWidth = f.intermediate.outFeatures
                l.intermediate = linear([f.intermediate.weight.value], [f.intermediate.bias.value])
                l.ffnOut = linear([f.output.weight.value], [f.output.bias.value])
                l.ffnNormGamma = place([f.layerNorm.weight.value])
                l.ffnNormBeta = place([f.layerNorm.bias.value])
            }
            layers.append(l)
        }
        if let p = model.pooler, model.task?.usesPooler ?? false {
            pooler = linear([p.weight.value], [p.bias.value])
        }
        if let h = model.head {
            head = linear([h.weight.value], [h.bias.value])
        }
        count = total
        arena = UnsafeMutablePointer<Float>.allocate(capacity: max(total, 1))
        var at = 0
        for t in tensors where t.count > 0 {
            t.scalars.withUnsafeBufferPointer { (arena + at).update(from: $0.baseAddress!, count: t.count) }
            at += t.count
        }
        for i in layers.indices {
            layers[i].qkv.resolve(in: arena)
            layers[i].attentionOut.resolve(in: arena)
            layers[i].intermediate.resolve(in: arena)
            layers[i].ffnOut.resolve(in: arena)
        }
        pooler?.resolve(in: arena)
        head.resolve(in: arena)
    }

    /// The parameter at `offset`.
    @inline(__always) func at(_ offset: Int) -> UnsafeMutablePointer<Float> { arena + offset }

    func deallocate() {
        arena.deallocate()
        for l in layers { for p in [l.qkv.packed, l.attentionOut.packed, l.intermediate.packed, l.ffnOut.packed] { p?.deallocate() } }
        pooler?.packed?.deallocate()
        head.packed?.deallocate()
    }
}

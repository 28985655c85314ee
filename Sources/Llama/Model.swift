import Foundation
import Tensor

/// Layer l's attention sublayer: RMSNorm, then Q/K/V projections (no bias), rotary embeddings on Q and K, causal
/// grouped-query attention and the output projection. Q and O are [Hq·Dh, D] / [D, Hq·Dh], K and V [Hkv·Dh, D].
public struct LlamaAttention {
    public let norm: Variable, q: Variable, k: Variable, v: Variable, o: Variable
    public init(norm: Variable, q: Variable, k: Variable, v: Variable, o: Variable) {
        self.norm = norm
        self.q = q
        self.k = k
        self.v = v
        self.o = o
    }
    /// Hkv·Dh, the rows of K and V.
    public var kvWidth: Int { k.shape[0] }
}

/// Layer l's FFN sublayer (SwiGLU): RMSNorm, then down(silu(gate(x)) ⊙ up(x)); gate and up [I, D], down [D, I].
public struct LlamaFFN {
    public let norm: Variable, gate: Variable, up: Variable, down: Variable
    public init(norm: Variable, gate: Variable, up: Variable, down: Variable) {
        self.norm = norm
        self.gate = gate
        self.up = up
        self.down = down
    }
}

/// One decoder layer; an absent sublayer (nil) leaves the residual unchanged.
public struct LlamaLayer {
    public var attention: LlamaAttention?
    public var ffn: LlamaFFN?
    public init(attention: LlamaAttention? = nil, ffn: LlamaFFN? = nil) {
        self.attention = attention
        self.ffn = ffn
    }
}

/// A padded batch of token sequences: `tokenIds` [B·T]; `attentionMask` [B·T] (1 = real token, 0 = padding; nil:
/// all real) — padding is never attended to and never a target; `positions` [B·T] the rotary position of each
/// token (nil: t = 0…T−1 in each row; with left padding, count from the first real token as `generate` does).
public struct LlamaBatch: Sendable {
    public let batch: Int, seqLen: Int
    public let tokenIds: [Int]
    public let attentionMask: [Int]?
    public let positions: [Int]?

    public init(batch: Int, seqLen: Int, tokenIds: [Int], attentionMask: [Int]? = nil, positions: [Int]? = nil) {
        precondition(tokenIds.count == batch * seqLen, "LlamaBatch: \(tokenIds.count) ids for \(batch) × \(seqLen)")
        precondition(attentionMask.map { $0.count == batch * seqLen } ?? true, "LlamaBatch: attention mask must be [B·T]")
        precondition(positions.map { $0.count == batch * seqLen } ?? true, "LlamaBatch: positions must be [B·T]")
        self.batch = batch
        self.seqLen = seqLen
        self.tokenIds = tokenIds
        self.attentionMask = attentionMask
        self.positions = positions
    }

    /// Which tokens are real (nil when all are).
    public var isReal: [Bool]? { attentionMask.map { $0.map { $0 != 0 } } }
    /// The rotary position of every token.
    public var rotaryPositions: [Int] { positions ?? (0..<(batch * seqLen)).map { $0 % seqLen } }
}

/// A LLaMA-family decoder LM on the training path (every op on the gradient tape): token embeddings; per layer
/// x += attention(rmsNorm(x)), x += ffn(rmsNorm(x)); a final RMSNorm; the output layer (the embedding table when
/// tied). Every layer has its own shape (`LlamaShape`), so a pruned model is just a model. Parameters carry Hugging
/// Face `LlamaForCausalLM` names (`LlamaKeys`).
public final class LlamaModel {
    public let config: LlamaConfig
    public let embedTokens: Variable
    public let layers: [LlamaLayer]
    public let norm: Variable
    /// The output layer [V, D]; nil when tied to `embedTokens`.
    public let lmHead: Variable?
    /// cos/sin for positions 0..<max_position_embeddings.
    public let rotaryTable: RotaryTable

    public init(config: LlamaConfig, embedTokens: Variable, layers: [LlamaLayer], norm: Variable, lmHead: Variable?) {
        self.config = config
        self.embedTokens = embedTokens
        self.layers = layers
        self.norm = norm
        self.lmHead = lmHead
        rotaryTable = RotaryTable(headDim: config.headDim, theta: config.ropeTheta, positions: config.maxPositionEmbeddings)
    }

    /// The shape this model has (each layer's KV heads and FFN width).
    public var shape: LlamaShape {
        var s = LlamaShape(config: config)
        s.layers = layers.map {
            LlamaLayerShape(kvHeads: ($0.attention?.kvWidth ?? 0) / config.headDim, ffnWidth: $0.ffn?.down.shape[1] ?? 0)
        }
        s.tiedEmbeddings = lmHead == nil
        return s
    }

    /// The output layer's weight [V, D]: `lmHead`, or the embedding table when tied.
    public var outputWeight: Variable { lmHead ?? embedTokens }

    /// Every parameter with its checkpoint name, in the order of the model (the tied output layer is not repeated).
    public var namedParameters: [(String, Variable)] {
        var out: [(String, Variable)] = [(LlamaKeys.embedTokens, embedTokens)]
        for (l, layer) in layers.enumerated() {
            let key = LlamaKeys.layer(l)
            if let a = layer.attention { out += zip(key.attention, [a.norm, a.q, a.k, a.v, a.o]).map { ($0, $1) } }
            if let f = layer.ffn { out += zip(key.ffn, [f.norm, f.gate, f.up, f.down]).map { ($0, $1) } }
        }
        out.append((LlamaKeys.finalNorm, norm))
        if let lmHead { out.append((LlamaKeys.lmHead, lmHead)) }
        return out
    }

    /// Logits [B·T, V] of every position (row b·T + t scores the token after position t); with `masks`, the
    /// masked model of Sheared-LLaMA (`LlamaMasks` says where each family acts).
    public func forward(_ batch: LlamaBatch, masks: LlamaMasks? = nil) -> Variable {
        let B = batch.batch, T = batch.seqLen
        let eps = Float(config.rmsNormEps)
        let positions = batch.rotaryPositions, keyMask = batch.isReal
        precondition(masks.map { $0.layers.count == layers.count && $0.heads.count == layers.count
            && $0.intermediate.count == layers.count } ?? true, "LlamaModel.forward: masks for another number of layers")
        let zHidden = masks?.hidden, kept = masks?.keptHidden
        var x = embedding(embedTokens, ids: batch.tokenIds).masked(by: zHidden)
        for (l, layer) in layers.enumerated() {
            if masks?.layerIsOff(l) == true { continue }
            let zLayer = masks?.layers[l]
            if let a = layer.attention {
                let h = rmsNorm(x, weight: a.norm, eps: eps, keptWidth: kept)
                let q = rotary(linear(h, weight: a.q, bias: nil), positions: positions, table: rotaryTable)
                let k = rotary(linear(h, weight: a.k, bias: nil), positions: positions, table: rotaryTable)
                let v = linear(h, weight: a.v, bias: nil)
                let ctx = causalAttention(q: q, k: k, v: v, batch: B, seqLen: T, kvHeads: a.kvWidth / config.headDim,
                                          headDim: config.headDim, keyMask: keyMask)
                x = x + linear(ctx.masked(by: masks?.heads[l]), weight: a.o, bias: nil).masked(by: zLayer).masked(by: zHidden)
            }
            if let f = layer.ffn {
                let h = rmsNorm(x, weight: f.norm, eps: eps, keptWidth: kept)
                let inner = (silu(linear(h, weight: f.gate, bias: nil)) * linear(h, weight: f.up, bias: nil))
                    .masked(by: masks?.intermediate[l])
                x = x + linear(inner, weight: f.down, bias: nil).masked(by: zLayer).masked(by: zHidden)
            }
        }
        let h = rmsNorm(x, weight: norm, eps: eps, keptWidth: kept).masked(by: zHidden)
        return linear(h, weight: outputWeight, bias: nil)
    }

    /// The causal LM loss of `batch` (each real token predicted from the ones before it; `languageModelLoss`).
    public func loss(_ batch: LlamaBatch, masks: LlamaMasks? = nil) -> Variable {
        languageModelLoss(forward(batch, masks: masks), tokens: batch.tokenIds, counted: batch.isReal, batch: batch.batch,
                          seqLen: batch.seqLen)
    }
}

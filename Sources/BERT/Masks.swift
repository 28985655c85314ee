import Tensor

/// The five CoFi mask families as values fed into the forward pass (cofi-spec §1). Any family may be absent
/// (nil), and so may any single layer's entry. Masks are `Variable`s so gradients flow into them; the
/// pruning layer decides where their values come from (hard-concrete samples or deterministic masks).
public struct MaskSet {
    /// z_hidn [D]: one value per residual-stream dimension, shared by the embeddings and all layers.
    public var hidden: Variable?
    /// z_head per layer: [H_l], scales each head's context before the heads are concatenated.
    public var heads: [Variable?]
    /// z_MHA per layer: [1], scales the whole attention output (bias included).
    public var attentionLayers: [Variable?]
    /// z_int per layer: [I_l], scales each FFN unit after the activation.
    public var intermediate: [Variable?]
    /// z_FFN per layer: [1], scales the whole FFN output (bias included).
    public var ffnLayers: [Variable?]

    /// An empty set (no family present) for a model of `layerCount` layers.
    public init(layerCount: Int) {
        hidden = nil
        heads = Array(repeating: nil, count: layerCount)
        attentionLayers = Array(repeating: nil, count: layerCount)
        intermediate = Array(repeating: nil, count: layerCount)
        ffnLayers = Array(repeating: nil, count: layerCount)
    }

    /// All mask variables with the names used in golden files: `hidden_z`, `layer.{l}.head_z`,
    /// `layer.{l}.head_layer_z`, `layer.{l}.intermediate_z`, `layer.{l}.mlp_z`.
    public var named: [(String, Variable)] {
        var out: [(String, Variable)] = []
        if let hidden { out.append(("hidden_z", hidden)) }
        for l in heads.indices {
            if let z = heads[l] { out.append(("layer.\(l).head_z", z)) }
            if let z = attentionLayers[l] { out.append(("layer.\(l).head_layer_z", z)) }
            if let z = intermediate[l] { out.append(("layer.\(l).intermediate_z", z)) }
            if let z = ffnLayers[l] { out.append(("layer.\(l).mlp_z", z)) }
        }
        return out
    }

    /// Whether layer l's attention sublayer is switched off entirely: its layer gate is exactly 0 or every head
    /// gate is exactly 0. Such a sublayer is the identity (no bias, no LayerNorm), exactly as the physically cut
    /// model without that sublayer (cofi-spec decision 5 and §7.3).
    public func attentionIsOff(layer l: Int) -> Bool {
        if let z = attentionLayers[l], z.value.scalars.allSatisfy({ $0 == 0 }) { return true }
        if let z = heads[l], z.value.scalars.allSatisfy({ $0 == 0 }) { return true }
        return false
    }

    /// Whether layer l's FFN sublayer is switched off entirely (layer gate 0 or every unit 0); see
    /// `attentionIsOff`.
    public func ffnIsOff(layer l: Int) -> Bool {
        if let z = ffnLayers[l], z.value.scalars.allSatisfy({ $0 == 0 }) { return true }
        if let z = intermediate[l], z.value.scalars.allSatisfy({ $0 == 0 }) { return true }
        return false
    }

    /// The hidden dims that take part in LayerNorm statistics (z_hidn ≠ 0), or nil without a hidden mask.
    public var hiddenKeep: [Bool]? { hidden.map { $0.value.scalars.map { $0 != 0 } } }
}

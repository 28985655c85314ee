import Tensor

/// Sheared-LLaMA's four mask families as values fed into the forward pass (`LlamaModel.forward(_:masks:)`). Any
/// family may be absent (nil), and so may any single layer's entry. Masks are `Variable`s so gradients flow into
/// them; the pruning layer (`Shearing`) decides where their values come from (hard-concrete samples while
/// training, deterministic masks for the cut).
///
/// Where each one acts (so that the masked model equals the cut one, `LlamaModel.compacted(masks:)`):
/// - `hidden` z_h [D]: the embeddings' output and every sublayer's output are scaled by it (so the residual stream is
///   zero in a dim whose value is 0), every RMSNorm takes its mean over the dims with z_h ≠ 0 (`rmsNorm`'s
///   `keptWidth`), and the final RMSNorm's output is scaled by it before the output layer.
/// - `layers[l]` [1]: scales both sublayers' outputs of layer l (the attention and the FFN); exactly 0 removes the
///   layer.
/// - `heads[l]` [Hkv_l]: one value per key/value group, scaling the context of its G query heads before the output
///   projection (grouped-query attention keeps every query head tied to its KV head, so a group goes as a whole).
/// - `intermediate[l]` [I_l]: one value per FFN unit, after silu(gate) ⊙ up.
public struct LlamaMasks {
    public var hidden: Variable?
    public var layers: [Variable?]
    public var heads: [Variable?]
    public var intermediate: [Variable?]

    /// An empty set (no family present) for a model of `layerCount` layers.
    public init(layerCount: Int) {
        hidden = nil
        layers = Array(repeating: nil, count: layerCount)
        heads = Array(repeating: nil, count: layerCount)
        intermediate = Array(repeating: nil, count: layerCount)
    }

    /// The number of hidden dims with z_h ≠ 0 (nil without a hidden mask): the mean width of every RMSNorm.
    public var keptHidden: Int? { hidden.map { $0.value.scalars.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } } }

    /// Whether layer l is switched off as a whole (its layer value exactly 0): it is then the identity, as the cut
    /// model without it, and the forward skips it (no gradient is lost: a hard-concrete value clamped at 0 passes
    /// none to its log α).
    public func layerIsOff(_ l: Int) -> Bool {
        guard let z = layers[l] else { return false }
        return z.value.scalars.allSatisfy { $0 == 0 }
    }
}

import BERT
import Foundation
import Tensor

/// Size accounting of cofi-spec §3 with project decision 1, for any (heterogeneous) dense BERT shape: the prunable
/// size M, the expected size E[size] and sparsity ŝ = 1 − E/M as functions of log α, and the exact size of a
/// deterministic mask set.
///
/// With hidden-dimension pruning (the reference path `get_num_parameters_and_constraint_for_hidden`):
///
///     E = (Σ_d P(hid_d)) · Σ_l [ (perHead_l/d)·P(mha_l)·Σ_h P(head_{l,h}) + 2·P(ffn_l)·Σ_i P(int_{l,i}) ]
///
/// and without it (`get_num_parameters_and_constraint`):
///
///     E = Σ_l [ perHead_l·P(mha_l)·Σ_h P(head_{l,h}) + perUnit_l·P(ffn_l)·Σ_i P(int_{l,i}) ]
///
/// where P(x) = P(z_x ≠ 0), perHead_l = MHA_l/H_l (exact), perUnit_l = ⌊FFN_l/I_l⌋ (the reference's floor), and
/// a family that is not pruned contributes P ≡ 1.
///
/// M counts the sublayers some pruned family gates: attention if heads, head_layer or hidden are pruned, FFN if
/// intermediate, mlp or hidden are pruned. For the reference's pruning types this is the reference's M (only
/// structured_heads and structured_mlp add to it; the default prunes everything, so M is the whole encoder's
/// linear layers, 85,017,600 for BERT-base).
public struct SizeModel: Equatable, Sendable {
    public let shape: BertShape
    public let families: Set<GateFamily>

    public init(shape: BertShape, families: Set<GateFamily> = Set(GateFamily.allCases)) {
        self.shape = shape
        self.families = families
    }

    var prunesHidden: Bool { families.contains(.hidden) }
    var countsAttention: Bool { prunesHidden || families.contains(.head) || families.contains(.headLayer) }
    var countsFFN: Bool { prunesHidden || families.contains(.intermediate) || families.contains(.mlp) }

    /// M: the prunable size the target sparsity refers to.
    public var prunableSize: Int {
        shape.layers.indices.reduce(0) { total, l in
            total + (countsAttention ? shape.attentionPrunableParameters(layer: l) : 0)
                + (countsFFN ? shape.ffnPrunableParameters(layer: l) : 0)
        }
    }

    /// Attention parameters per head of layer l in the dense shape, MHA_l/H_l (196,864 for BERT-base).
    public func parametersPerHead(layer l: Int) -> Double {
        let h = shape.layers[l].heads
        return h == 0 ? 0 : Double(shape.attentionPrunableParameters(layer: l)) / Double(h)
    }

    /// FFN parameters per unit of layer l, ⌊FFN_l/I_l⌋ as the reference (1,537 for BERT-base).
    public func parametersPerUnit(layer l: Int) -> Int {
        let i = shape.layers[l].ffnWidth
        return i == 0 ? 0 : shape.ffnPrunableParameters(layer: l) / i
    }

    /// Coefficients of the per-layer sums: E = S_hid · Σ_l [cHead_l·P(mha_l)·ΣP(head) + cUnit_l·P(ffn_l)·ΣP(int)].
    func coefficients(layer l: Int) -> (head: Double, unit: Double) {
        let d = Double(shape.hiddenSize)
        let head = countsAttention ? (prunesHidden ? parametersPerHead(layer: l) / d : parametersPerHead(layer: l)) : 0
        let unit = countsFFN ? (prunesHidden ? 2 : Double(parametersPerUnit(layer: l))) : 0
        return (head, unit)
    }

    // MARK: Expected size

    /// E[size] from the current log α of `l0` (which must have this shape), in Double.
    public func expectedSize(_ l0: L0Module) -> Double { evaluate(l0).size }

    /// ŝ = 1 − E[size]/M as a scalar `Variable` whose gradient reaches every log α of `l0`. The sums are taken in
    /// Double; P(z ≠ 0) is computed in Float exactly as `HardConcrete.keepProbability`.
    public func expectedSparsity(_ l0: L0Module) -> Variable {
        let e = evaluate(l0)
        let M = Double(prunableSize)
        let inputs = l0.gates.map(\.variable)
        return Variable(Tensor(scalar: Float(1 - e.size / M)), inputs: inputs) { g in
            e.pullback(-Double(g.scalar) / M)
        }
    }

    /// Forward pass of the expected size with what its gradient needs.
    struct Evaluation {
        var size: Double
        /// Accumulates ∂loss/∂log α into every gate, given ∂loss/∂E.
        var pullback: (Double) -> Void
    }

    private func evaluate(_ l0: L0Module) -> Evaluation {
        precondition(l0.shape.layers == shape.layers && l0.shape.hiddenSize == shape.hiddenSize,
                     "L0 module of another shape")
        func probs(_ v: Variable?) -> [Float]? { v.map { $0.value.scalars.map(HardConcrete.keepProbability) } }
        func total(_ p: [Float]?, default n: Int) -> Double { p.map { $0.reduce(0.0) { $0 + Double($1) } } ?? Double(n) }

        let L = shape.layers.count
        let pHid = probs(l0.hidden)
        let sHid = prunesHidden ? total(pHid, default: shape.hiddenSize) : 1
        var sHead = [Double](), sInt = [Double](), pMha = [Double](), pFfn = [Double]()
        var coef = [(head: Double, unit: Double)]()
        var bracket = 0.0
        for l in 0..<L {
            let c = coefficients(layer: l)
            coef.append(c)
            sHead.append(total(probs(l0.heads[l]), default: shape.layers[l].heads))
            sInt.append(total(probs(l0.intermediate[l]), default: shape.layers[l].ffnWidth))
            pMha.append(total(probs(l0.attentionLayers[l]), default: 1))
            pFfn.append(total(probs(l0.ffnLayers[l]), default: 1))
            bracket += c.head * pMha[l] * sHead[l] + c.unit * pFfn[l] * sInt[l]
        }
        let size = sHid * bracket

        // ∂E/∂P for each gate, chained through dP/d log α; `scale` is ∂loss/∂E.
        func push(_ v: Variable?, _ dEdP: Double, _ scale: Double) {
            guard let v, v.requiresGrad else { return }
            let s = Float(dEdP * scale)
            v.accumulate(v.value.map { s * HardConcrete.keepProbabilityDerivative($0) })
        }
        let hiddenVar = l0.hidden, headVars = l0.heads, intVars = l0.intermediate
        let mhaVars = l0.attentionLayers, ffnVars = l0.ffnLayers
        let prunesHidden = self.prunesHidden
        return Evaluation(size: size) { scale in
            if prunesHidden { push(hiddenVar, bracket, scale) }
            for l in 0..<L {
                push(headVars[l], sHid * coef[l].head * pMha[l], scale)
                push(mhaVars[l], sHid * coef[l].head * sHead[l], scale)
                push(intVars[l], sHid * coef[l].unit * pFfn[l], scale)
                push(ffnVars[l], sHid * coef[l].unit * sInt[l], scale)
            }
        }
    }

    // MARK: Exact size of a mask set

    /// The exact size of a (deterministic) mask set: every z is booleanised as z > 0, and a missing family keeps
    /// everything. `compactShape` is the shape of the cut model, `prunableRemaining` its share of M counted as M
    /// is (weights and biases of the counted sublayers; `sparsity` = 1 − that / M, the size the target refers to),
    /// `remaining` the reference's `calculate_model_size` count (weights only: 4·d_h·#{(l,h,d) kept} +
    /// 2·#{(l,i,d) kept}) and `encoderParameters` the real count (biases and LayerNorms included) that
    /// `evaluation.py` reports.
    public func exactSize(of masks: MaskSet) -> ExactSize {
        func kept(_ v: Variable?, _ n: Int) -> [Bool] { v.map { $0.value.scalars.map { $0 > 0 } } ?? Array(repeating: true, count: n) }
        precondition(masks.heads.count == shape.layers.count, "mask set of \(masks.heads.count) layers")
        let hid = kept(masks.hidden, shape.hiddenSize).filter { $0 }.count
        var layers = [LayerShape](), remaining = 0
        for (l, ls) in shape.layers.enumerated() {
            let mha = kept(masks.attentionLayers[l], 1)[0], ffn = kept(masks.ffnLayers[l], 1)[0]
            let heads = mha && ls.heads > 0 ? kept(masks.heads[l], ls.heads).filter { $0 }.count : 0
            let units = ffn && ls.ffnWidth > 0 ? kept(masks.intermediate[l], ls.ffnWidth).filter { $0 }.count : 0
            layers.append(LayerShape(heads: heads, ffnWidth: units))
            remaining += (countsAttention ? 4 * shape.headDim * heads * hid : 0) + (countsFFN ? 2 * units * hid : 0)
        }
        var compact = shape
        compact.hiddenSize = hid
        compact.layers = layers
        let prunableRemaining = layers.indices.reduce(0) { total, l in
            total + (countsAttention ? compact.attentionPrunableParameters(layer: l) : 0)
                + (countsFFN ? compact.ffnPrunableParameters(layer: l) : 0)
        }
        return ExactSize(remaining: remaining, prunableRemaining: prunableRemaining, prunableSize: prunableSize,
                         compactShape: compact, denseEncoderParameters: shape.encoderParameters)
    }
}

/// The size of a cut model (see `SizeModel.exactSize(of:)`).
public struct ExactSize: Equatable, Sendable {
    /// The reference's remaining count (weights of the kept (head, dim) and (unit, dim) pairs, no biases).
    public let remaining: Int
    /// What is left of M in the cut model, counted as M is (weights and biases of the counted sublayers).
    public let prunableRemaining: Int
    /// M of the dense shape.
    public let prunableSize: Int
    /// The shape after cutting: kept hidden dims, and per layer the heads and FFN units whose gates (and layer
    /// gate) are non-zero.
    public let compactShape: BertShape
    /// Every encoder-layer parameter of the dense shape (85,054,464 for BERT-base).
    public let denseEncoderParameters: Int

    /// The exact sparsity: 1 − prunableRemaining/M, the fraction of M the cut model removes (0 for an unpruned
    /// model). The target sparsity, the checkpoint gate and the compact format's `sparsity` all mean this.
    public var sparsity: Double { 1 - Double(prunableRemaining) / Double(prunableSize) }
    /// The reference's `pruned_model_sparsity` = 1 − remaining/M (0.001 for an unpruned BERT-base: no biases).
    public var referenceSparsity: Double { 1 - Double(remaining) / Double(prunableSize) }
    /// Encoder-layer parameters of the cut model, biases and LayerNorms included.
    public var encoderParameters: Int { compactShape.encoderParameters }
    /// 1 − P_pruned/P_full over encoder-layer parameters, as `evaluation.py` counts (it rounds to 3 places).
    public var encoderSparsity: Double { 1 - Double(encoderParameters) / Double(denseEncoderParameters) }
}

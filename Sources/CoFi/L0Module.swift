import BERT
import Foundation
import Tensor

/// The five CoFi gate families (cofi-spec §1), listed in the reference's creation order — the order in which
/// log α are initialised and gate noise is drawn: head, intermediate, hidden, mlp, head_layer.
public enum GateFamily: String, CaseIterable, Codable, CodingKeyRepresentable, Sendable {
    /// z_head: one gate per attention head, [H_l] per layer.
    case head
    /// z_int: one gate per FFN unit, [I_l] per layer.
    case intermediate
    /// z_hidn: one gate per residual-stream dimension, [D], shared by all layers and the embeddings.
    case hidden
    /// z_FFN: one gate per layer for the whole FFN sublayer, [1].
    case mlp
    /// z_MHA: one gate per layer for the whole attention sublayer, [1].
    case headLayer = "head_layer"

    /// The families of one reference pruning type (`--pruning_type`, '+'-separated): `structured_heads` → head,
    /// `structured_mlp` → intermediate, `hidden` → hidden, `layer` → mlp and head_layer.
    public static func families(pruningType: String) throws -> Set<GateFamily> {
        var out = Set<GateFamily>()
        for part in pruningType.split(separator: "+").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            switch part {
            case "structured_heads": out.insert(.head)
            case "structured_mlp": out.insert(.intermediate)
            case "hidden": out.insert(.hidden)
            case "layer": out.formUnion([.mlp, .headLayer])
            default:
                throw L0Error("unknown pruning type '\(part)' in '\(pruningType)' "
                              + "(expected structured_heads, structured_mlp, hidden, layer joined by '+')")
            }
        }
        guard !out.isEmpty else { throw L0Error("empty pruning type") }
        return out
    }
}

/// How an `L0Module` is built: which families are pruned and how log α is initialised.
public struct L0Configuration: Equatable, Codable, Sendable {
    /// The pruned families; the others are absent (no gate, the model sees no mask there).
    public var families: Set<GateFamily>
    /// Mean of the normal initialisation of log α, per family.
    public var initialMeans: [GateFamily: Float]
    /// Standard deviation of the normal initialisation (the reference's 1e-2).
    public var initialStd: Float

    /// log α = ln(1 − p) − ln p for a drop rate p (`droprate_init`): P(z ≠ 0) then starts at 1 − p up to the stretch.
    public static func logAlpha(dropRate p: Float) -> Float { Float(log(1 - Double(p)) - log(Double(p))) }

    /// The reference's initialisation: mean 10 for heads, hidden dims and both layer gates, and only the FFN units
    /// at the drop-rate mean ln(1 − 0.5) − ln 0.5 = 0 — the asymmetry the authors call "mostly a typo"
    /// (cofi-spec §2, issue #51). Kept as the default because it is what the paper's numbers came from.
    public static let referenceInitialMeans: [GateFamily: Float] = [
        .head: 10, .intermediate: logAlpha(dropRate: 0.5), .hidden: 10, .mlp: 10, .headLayer: 10,
    ]

    public init(families: Set<GateFamily> = Set(GateFamily.allCases),
                initialMeans: [GateFamily: Float] = L0Configuration.referenceInitialMeans,
                initialStd: Float = 0.01) {
        self.families = families
        self.initialMeans = initialMeans
        self.initialStd = initialStd
    }

    /// The families of a reference `--pruning_type` string, e.g. "structured_heads+structured_mlp+hidden+layer".
    public init(pruningType: String) throws {
        self.init(families: try GateFamily.families(pruningType: pruningType))
    }

    func initialMean(_ f: GateFamily) -> Float { initialMeans[f] ?? L0Configuration.referenceInitialMeans[f]! }
}

/// A malformed L0 configuration or state.
public struct L0Error: Error, CustomStringConvertible {
    public let description: String
    init(_ message: String) { description = "L0 module: " + message }
}

/// The learnable log α of every hard-concrete gate of one BERT shape (the reference's `L0Module`, without λ,
/// which lives in `Lagrangian`). Any shape is allowed: each layer has its own heads and FFN width; a layer with
/// no heads (no FFN) has no head / head_layer (intermediate / mlp) gate.
///
/// Per step the pruning loop calls `sample(using:)` once (one noise draw per gate, shared by the whole batch),
/// computes the expected sparsity through `sizeModel`, steps the optimiser and then `clampLogAlpha()`.
/// Evaluation and compaction use `deterministicMasks()`.
public final class L0Module {
    /// The dense shape the gates belong to.
    public let shape: BertShape
    public let configuration: L0Configuration
    /// log α of z_head per layer, [H_l]; nil when heads are not pruned or the layer has none.
    public let heads: [Variable?]
    /// log α of z_MHA per layer, [1].
    public let attentionLayers: [Variable?]
    /// log α of z_int per layer, [I_l].
    public let intermediate: [Variable?]
    /// log α of z_FFN per layer, [1].
    public let ffnLayers: [Variable?]
    /// log α of z_hidn, [D].
    public let hidden: Variable?
    /// M, the expected size and the exact size for this shape and these families (cofi-spec §3).
    public let sizeModel: SizeModel

    /// Builds the gates of `shape` and draws log α ~ normal(mean of the family, std) from `rng`, family by family
    /// in creation order (head, intermediate, hidden, mlp, head_layer), layer by layer within a family. The
    /// values are not clamped yet (the reference starts at 10 and clamps after the first step).
    public init(shape: BertShape, configuration: L0Configuration = L0Configuration(), using rng: inout Xoshiro256) {
        self.shape = shape
        self.configuration = configuration
        let fam = configuration.families, L = shape.layers.count
        func gate(_ f: GateFamily, _ count: Int, _ name: String) -> Variable? {
            guard fam.contains(f), count > 0 else { return nil }
            let v = Tensor.randomNormal(shape: [count], mean: configuration.initialMean(f),
                                        std: configuration.initialStd, using: &rng)
            return Variable(v, requiresGrad: true, name: name)
        }
        var h = [Variable?](), i = [Variable?](), m = [Variable?](), a = [Variable?]()
        for l in 0..<L { h.append(gate(.head, shape.layers[l].heads, Self.name(.head, layer: l))) }
        for l in 0..<L { i.append(gate(.intermediate, shape.layers[l].ffnWidth, Self.name(.intermediate, layer: l))) }
        hidden = gate(.hidden, shape.hiddenSize, Self.name(.hidden, layer: nil))
        for l in 0..<L {
            m.append(gate(.mlp, shape.layers[l].ffnWidth > 0 ? 1 : 0, Self.name(.mlp, layer: l)))
        }
        for l in 0..<L {
            a.append(gate(.headLayer, shape.layers[l].heads > 0 ? 1 : 0, Self.name(.headLayer, layer: l)))
        }
        heads = h
        intermediate = i
        ffnLayers = m
        attentionLayers = a
        sizeModel = SizeModel(shape: shape, families: fam)
    }

    /// The parameter name of a family's log α: `l0.layer.{l}.{family}_log_alpha`, or `l0.hidden_log_alpha`.
    public static func name(_ family: GateFamily, layer: Int?) -> String {
        if let layer { return "l0.layer.\(layer).\(family.rawValue)_log_alpha" }
        return "l0.\(family.rawValue)_log_alpha"
    }

    /// Every log α with its name, in creation order (the optimiser's "log α" group).
    public var parameters: [(String, Variable)] { gates.map { ($0.variable.name!, $0.variable) } }

    /// Every present gate vector in creation order, with its family and layer (nil for hidden).
    public var gates: [(family: GateFamily, layer: Int?, variable: Variable)] {
        var out: [(GateFamily, Int?, Variable)] = []
        for (l, v) in heads.enumerated() { if let v { out.append((.head, l, v)) } }
        for (l, v) in intermediate.enumerated() { if let v { out.append((.intermediate, l, v)) } }
        if let hidden { out.append((.hidden, nil, hidden)) }
        for (l, v) in ffnLayers.enumerated() { if let v { out.append((.mlp, l, v)) } }
        for (l, v) in attentionLayers.enumerated() { if let v { out.append((.headLayer, l, v)) } }
        return out
    }

    /// Clamps every log α to [ln 0.01, ln 100] (`constrain_parameters`); call after every optimiser step.
    public func clampLogAlpha() {
        let lo = HardConcrete.logAlphaRange.lowerBound, hi = HardConcrete.logAlphaRange.upperBound
        for g in gates {
            g.variable.update { t in
                let n = t.count
                t.withMutablePointer { p in for i in 0..<n { p[i] = min(max(p[i], lo), hi) } }
            }
        }
    }

    /// One hard-concrete sample of every gate (cofi-spec §2), as the masks the model multiplies in. The noise is
    /// drawn from `rng` in creation order, one uniform per gate; gradients flow from each z into its log α.
    public func sample(using rng: inout Xoshiro256) -> MaskSet {
        var z = [ObjectIdentifier: Variable]()
        for g in gates {
            let u = HardConcrete.noise(count: g.variable.value.count, using: &rng)
            z[ObjectIdentifier(g.variable)] = HardConcrete.sample(logAlpha: g.variable, noise: u)
        }
        return maskSet { z[ObjectIdentifier($0)]! }
    }

    /// The deterministic masks (cofi-spec §2, project decision 5): per mask vector the expected number of zeros,
    /// rounded half to even, zeroes the smallest soft values; heads, FFN units and both layer gates keep their soft
    /// value sigmoid(1.2·log α), hidden dims are binary. Constants without gradient.
    public func deterministicMasks() -> MaskSet {
        maskSet { v in
            Variable(HardConcrete.deterministicMask(logAlpha: v.value, binary: v === self.hidden))
        }
    }

    private func maskSet(_ make: (Variable) -> Variable) -> MaskSet {
        var set = MaskSet(layerCount: shape.layers.count)
        set.hidden = hidden.map(make)
        set.heads = heads.map { $0.map(make) }
        set.attentionLayers = attentionLayers.map { $0.map(make) }
        set.intermediate = intermediate.map { $0.map(make) }
        set.ffnLayers = ffnLayers.map { $0.map(make) }
        return set
    }

    /// The expected sparsity ŝ = 1 − E[size]/M, differentiable in every log α (cofi-spec §3).
    public func expectedSparsity() -> Variable { sizeModel.expectedSparsity(self) }

    /// Every log α by parameter name, for checkpoints.
    public var state: [String: Tensor] {
        Dictionary(uniqueKeysWithValues: parameters.map { ($0.0, $0.1.value) })
    }

    /// Restores log α from `state`: every gate of this module must be present with its shape; unknown keys that
    /// start with `l0.` and end in `_log_alpha` are rejected (a state of another shape or family set).
    public func load(state: [String: Tensor]) throws {
        let mine = parameters
        let names = Set(mine.map(\.0))
        for key in state.keys where key.hasPrefix("l0.") && key.hasSuffix("_log_alpha") && !names.contains(key) {
            throw L0Error("state has '\(key)', which this module (its shape and families) does not have")
        }
        for (name, v) in mine {
            guard let t = state[name] else { throw L0Error("state lacks '\(name)'") }
            guard t.shape == v.shape else {
                throw L0Error("'\(name)' has shape \(t.shape) in the state, the module expects \(v.shape)")
            }
        }
        for (name, v) in mine { v.assign(state[name]!) }
    }
}

import CoFi
import Foundation
import Llama
import Tensor

/// Sheared-LLaMA's L0 gates over a source model, with one Lagrangian term per family that drives its expected
/// count to the target shape (paper §2.1; LLM-Shearing's `L0Module` with a target model):
/// - layers: log α [L] (each gate scales both sublayers of its layer), target `layers`;
/// - heads: log α [L, Hkv], one gate per key/value group, target `kvHeads` in every layer;
/// - FFN: log α [L, I], one gate per unit, target `ffn` in every layer;
/// - hidden: log α [D], one gate per residual-stream dim, target `hidden`.
///
/// For a family with expected sparsity ŝ (1 − Σ P(z ≠ 0) / size, per layer for heads and FFN) and ramped target t,
/// the term is λ1(ŝ − t) + λ2(ŝ − t)², averaged over the layers for the per-layer families; λ1, λ2 are the
/// family's own (`CoFi.Lagrangian`: maximised, the gates minimise). t rises linearly from 0 over the warm-up
/// (`SparsityTarget`). Log α starts at 5 as in LLM-Shearing (clamped to the paper's range after every step), i.e.
/// every structure nearly surely kept.
///
/// The deterministic masks (`deterministic()`) keep exactly the target's count of each structure — the largest soft
/// values, at their soft values (LLM-Shearing's `eval_target_model`) — so the cut model has the target shape
/// whatever the gates converged to.
public final class ShearGates {
    public let source: LlamaConfig
    public let target: TargetShape
    public let layers: Variable, heads: Variable, ffn: Variable, hidden: Variable
    public let lagrangians: [String: Lagrangian]
    public static let families = ["layers", "heads", "ffn", "hidden"]
    public static let initialLogAlpha: Float = 5

    public init(source c: LlamaConfig, target: TargetShape) {
        self.source = c
        self.target = target
        let start = min(Self.initialLogAlpha, HardConcrete.logAlphaRange.upperBound)
        func gates(_ shape: [Int], _ name: String) -> Variable {
            Variable(Tensor(repeating: start, shape: shape), requiresGrad: true, name: "l0.\(name).log_alpha")
        }
        layers = gates([c.numHiddenLayers], "layers")
        heads = gates([c.numHiddenLayers, c.numKeyValueHeads], "heads")
        ffn = gates([c.numHiddenLayers, c.intermediateSize], "ffn")
        hidden = gates([c.hiddenSize], "hidden")
        lagrangians = Dictionary(uniqueKeysWithValues: Self.families.map { ($0, Lagrangian()) })
    }

    /// Every log α with its name.
    public var logAlphas: [(String, Variable)] { [layers, heads, ffn, hidden].map { ($0.name!, $0) } }

    /// Every λ with its name (`l0.<family>.lambda_1`, …).
    public var lambdas: [(String, Variable)] {
        Self.families.flatMap { f in lagrangians[f]!.parameters.map { ("l0.\(f).\($0.0.replacingOccurrences(of: "l0.", with: ""))", $0.1) } }
    }

    /// The target sparsity of each family: 1 − target / source.
    public var targetSparsity: [String: Float] {
        ["layers": 1 - Float(target.layers) / Float(source.numHiddenLayers),
         "heads": 1 - Float(target.kvHeads) / Float(source.numKeyValueHeads),
         "ffn": 1 - Float(target.ffn) / Float(source.intermediateSize),
         "hidden": 1 - Float(target.hidden) / Float(source.hiddenSize)]
    }

    /// Masks of hard-concrete samples (noise from `rng`), differentiable in log α.
    public func sample(rng: inout Xoshiro256) -> LlamaMasks {
        let L = source.numHiddenLayers
        var m = LlamaMasks(layerCount: L)
        func draw(_ la: Variable) -> Variable { HardConcrete.sample(logAlpha: la, noise: HardConcrete.noise(count: la.value.count, using: &rng)) }
        let zl = draw(layers), zh = draw(heads), zi = draw(ffn)
        m.hidden = draw(hidden)
        for l in 0..<L {
            m.layers[l] = zl.column(l)
            m.heads[l] = zh.gatherRows([l])
            m.intermediate[l] = zi.gatherRows([l])
        }
        return m
    }

    /// The deterministic masks of the target shape (constants): per family, exactly the target's count kept — the
    /// largest soft values — at their soft values.
    public func deterministic() -> LlamaMasks {
        let L = source.numHiddenLayers, Hkv = source.numKeyValueHeads, I = source.intermediateSize
        var m = LlamaMasks(layerCount: L)
        let zl = HardConcrete.deterministicMask(logAlpha: layers.value, zeros: L - target.layers).scalars
        let h = heads.value.scalars, f = ffn.value.scalars
        m.hidden = Variable(HardConcrete.deterministicMask(logAlpha: hidden.value, zeros: source.hiddenSize - target.hidden))
        for l in 0..<L {
            m.layers[l] = Variable(Tensor(shape: [1], scalars: [zl[l]]))
            m.heads[l] = Variable(HardConcrete.deterministicMask(logAlpha: Tensor(shape: [Hkv], scalars: Array(h[(l * Hkv)..<((l + 1) * Hkv)])),
                                                                 zeros: Hkv - target.kvHeads))
            m.intermediate[l] = Variable(HardConcrete.deterministicMask(logAlpha: Tensor(shape: [I], scalars: Array(f[(l * I)..<((l + 1) * I)])),
                                                                        zeros: I - target.ffn))
        }
        return m
    }

    /// The expected sparsity of each family (per-layer families: the mean over layers), for the progress line.
    public func expectedSparsity() -> [String: Float] {
        func sparsity(_ la: Tensor) -> Float { 1 - la.scalars.map(HardConcrete.keepProbability).reduce(0, +) / Float(la.count) }
        return ["layers": sparsity(layers.value), "heads": sparsity(heads.value), "ffn": sparsity(ffn.value),
                "hidden": sparsity(hidden.value)]
    }

    /// The expected number of each structure (layers; KV heads and FFN units per layer, averaged; hidden dims).
    public func expectedCounts() -> [String: Double] {
        func kept(_ la: Tensor) -> Double { la.scalars.reduce(0.0) { $0 + Double(HardConcrete.keepProbability($1)) } }
        let L = Double(source.numHiddenLayers)
        return ["layers": kept(layers.value), "heads": kept(heads.value) / L, "ffn": kept(ffn.value) / L,
                "hidden": kept(hidden.value)]
    }

    /// Σ over families of the Lagrangian term at targets `t` (each family's ramped target sparsity).
    public func lagrangianLoss(targets t: [String: Float]) -> Variable {
        let L = source.numHiddenLayers
        func sparsity(_ keep: Variable, size: Int) -> Variable { (-1 / Float(size)) * keep.sum() + 1 }
        var total = lagrangians["layers"]!.loss(expectedSparsity: sparsity(HardConcrete.keepProbability(layers), size: L),
                                                 target: t["layers"]!)
        total = total + lagrangians["hidden"]!.loss(expectedSparsity: sparsity(HardConcrete.keepProbability(hidden), size: source.hiddenSize),
                                                    target: t["hidden"]!)
        for (family, la, size) in [("heads", heads, source.numKeyValueHeads), ("ffn", ffn, source.intermediateSize)] {
            let keep = HardConcrete.keepProbability(la)
            var sum: Variable?
            for l in 0..<L {
                let term = lagrangians[family]!.loss(expectedSparsity: sparsity(keep.gatherRows([l]), size: size), target: t[family]!)
                sum = sum.map { $0 + term } ?? term
            }
            total = total + (1 / Float(L)) * sum!
        }
        return total
    }

    /// Clamps every log α to the paper's range (after each optimiser step).
    public func constrain() {
        for (_, la) in logAlphas { la.update { $0 = $0.map { min(max($0, HardConcrete.logAlphaRange.lowerBound), HardConcrete.logAlphaRange.upperBound) } } }
    }
}

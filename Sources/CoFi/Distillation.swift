import BERT
import Foundation
import Tasks
import Tensor

/// Distillation from a fine-tuned teacher into the (masked or compact) student, cofi-spec §5:
///
///     L = α_ce·L_pred + α_layer·L_layer (+ α_label·L_label, off by default: project decision 6)
///
/// * L_pred: T²·KL(p_t ‖ p_s) with T = 2 for classification; MSE between the predictions for regression (P7);
///   the mean of the start and end KLs for spans.
/// * L_layer = Σ_i MSE(W_layer·H_s^{m(i)}, H_t^i) over the distilled teacher layers i, with the mapping m
///   recomputed every step (`LayerMapping`, v3 or v4).
///
/// The teacher is a constant: its outputs enter as values, and gradients flow into the student's logits and hidden
/// states and into W_layer (`LayerTransformation`, trained with the model optimiser group).

/// A distillation set-up that cannot apply: widths that do not match, teacher layers out of range, a missing
/// output. `description` says what was expected and what was found.
public struct DistillationError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

// MARK: - Prediction distillation

/// Span (QA) prediction distillation: ½·(KL_start + KL_end), each T²·KL(p_t ‖ p_s) over the T positions of a row,
/// averaged over the B rows (cofi-spec §8, `trainer_qa.py`).
///
/// Every position takes part, padding included: the reference (HF `BertForQuestionAnswering`) does not mask the
/// span logits of padding tokens in either model, and both models see the same padded batch, so the teacher's
/// distribution over padding positions is distilled as it is. Logits are [B, T].
public func spanDistillationKL(studentStart: Variable, studentEnd: Variable, teacherStart: Tensor,
                               teacherEnd: Tensor, temperature T: Float) -> Variable {
    let start = distillationKL(student: studentStart, teacher: teacherStart, temperature: T)
    let end = distillationKL(student: studentEnd, teacher: teacherEnd, temperature: T)
    return 0.5 * (start + end)
}

/// The prediction-layer loss L_pred for `head`, from the student's and the (constant) teacher's outputs:
/// classification T²·KL(p_t ‖ p_s) summed over classes and averaged over the batch; regression the MSE between
/// the student's and the teacher's predictions (no temperature: the softmax of a single output is constant, which
/// is the reference's STS-B bug P7); span the mean of the start and end KLs (`spanDistillationKL`).
public func predictionDistillationLoss(student: BertOutput, teacher: BertOutput, head: TaskHeadKind,
                                       temperature T: Float) throws -> Variable {
    func pair(_ s: Variable?, _ t: Variable?, _ what: String) throws -> (Variable, Tensor) {
        guard let s, let t else { throw DistillationError("prediction distillation (\(head)): the \(s == nil ? "student" : "teacher") output has no \(what)") }
        guard s.shape == t.shape else {
            throw DistillationError("prediction distillation: student \(what) \(s.shape) vs teacher \(what) \(t.shape)")
        }
        return (s, t.value)
    }
    switch head {
    case .classification:
        let (s, t) = try pair(student.logits, teacher.logits, "logits")
        return distillationKL(student: s, teacher: t, temperature: T)
    case .regression:
        let (s, t) = try pair(student.logits, teacher.logits, "logits")
        return meanSquaredError(s, target: t)
    case .span:
        let (ss, ts) = try pair(student.startLogits, teacher.startLogits, "start logits")
        let (se, te) = try pair(student.endLogits, teacher.endLogits, "end logits")
        return spanDistillationKL(studentStart: ss, studentEnd: se, teacherStart: ts, teacherEnd: te, temperature: T)
    }
}

// MARK: - Layer transformation

/// W_layer: the learned linear map y = W·h + b from the student's hidden width D_s to the teacher's D_t
/// (`layer_transformation` in the reference). W is [D_t, D_s] (checkpoint layout), b is [D_t].
///
/// Its parameters belong to the **model** optimiser group (cofi-spec §4) under the names
/// `layer_transformation.weight` / `layer_transformation.bias` (the bias in the no-decay group, as
/// `ParameterGroup.standard` sorts it).
public struct LayerTransformation {
    public static let weightName = "layer_transformation.weight"
    public static let biasName = "layer_transformation.bias"

    /// W [D_t, D_s].
    public let weight: Variable
    /// b [D_t].
    public let bias: Variable

    /// The reference's initialisation: the identity with a zero bias. Only defined when the widths agree; a
    /// student of another width needs an explicit map (`init(weight:bias:)`), e.g. one loaded from a checkpoint or
    /// the identity cut to the kept hidden dims (`keepingInputs`).
    public init(studentWidth: Int, teacherWidth: Int) throws {
        guard studentWidth == teacherWidth else {
            throw DistillationError("layer distillation: the student's hidden width \(studentWidth) differs from the "
                + "teacher's \(teacherWidth), so layer_transformation cannot start as the identity; give its weight "
                + "[\(teacherWidth), \(studentWidth)] and bias [\(teacherWidth)] explicitly, or turn layer distillation off")
        }
        guard studentWidth > 0 else { throw DistillationError("layer distillation: hidden width \(studentWidth)") }
        let D = studentWidth
        var w = Tensor(zeros: [D, D])
        for i in 0..<D { w.scalars[i * D + i] = 1 }
        self.init(checkedWeight: w, bias: Tensor(zeros: [D]))
    }

    /// An explicit map: `weight` [D_t, D_s], `bias` [D_t].
    public init(weight: Tensor, bias: Tensor) throws {
        guard weight.rank == 2, bias.shape == [weight.shape[0]] else {
            throw DistillationError("layer_transformation: weight \(weight.shape) and bias \(bias.shape); expected "
                + "[D_t, D_s] and [D_t]")
        }
        self.init(checkedWeight: weight, bias: bias)
    }

    private init(checkedWeight w: Tensor, bias b: Tensor) {
        weight = Variable(w, requiresGrad: true, name: Self.weightName)
        bias = Variable(b, requiresGrad: true, name: Self.biasName)
    }

    /// D_s, the width it reads.
    public var studentWidth: Int { weight.shape[1] }
    /// D_t, the width it writes.
    public var teacherWidth: Int { weight.shape[0] }

    /// The trainable parameters by checkpoint name, for the model optimiser group.
    public var parameters: [(String, Variable)] { [(Self.weightName, weight), (Self.biasName, bias)] }

    /// W·h + b for student hidden states h [N, D_s] → [N, D_t].
    public func callAsFunction(_ h: Variable) -> Variable { linear(h, weight: weight, bias: bias) }

    /// The map restricted to the kept student hidden dims (input columns `kept`, in order), as compaction cuts it
    /// (cofi-spec §7: layer_transformation loses input columns with the pruned hidden dims). New leaves; the
    /// values are copied.
    public func keepingInputs(_ kept: [Int]) -> LayerTransformation {
        let Dt = teacherWidth, Ds = studentWidth
        precondition(kept.allSatisfy { $0 >= 0 && $0 < Ds }, "kept input outside 0..<\(Ds)")
        let w = weight.value
        let cut = Tensor(shape: [Dt, kept.count]) { out in
            for r in 0..<Dt { for (c, k) in kept.enumerated() { out[r * kept.count + c] = w.scalars[r * Ds + k] } }
        }
        return LayerTransformation(checkedWeight: cut, bias: bias.value)
    }
}

// MARK: - Layer distillation

/// What one layer-distillation step computed.
public struct LayerDistillationResult {
    /// L_layer = Σ_i ℓ[i, m(i)], with a graph through the chosen pairs only.
    public var loss: Variable
    /// The distilled teacher layers (1-based, ascending).
    public var teacherLayers: [Int]
    /// m(i): the student layer (1-based) paired with `teacherLayers[i]`.
    public var mapping: [Int]
    /// ℓ[i][j − 1] for every teacher layer i and student layer j, computed without gradients (for selection and
    /// logging).
    public var pairLosses: [[Double]]
}

/// Layer distillation with the dynamic mapping (cofi-spec §5).
///
/// Every pair's ℓ[i, j] = MSE(W_layer·H_s^j, H_t^i) is the mean over all N·D_t entries of the states it is given:
/// on padded passes N = B·T, padding positions included, as in the reference (`MSELoss(reduction="mean")` on the
/// padded [B, T, D] states); on packed passes (`ForwardMode.packsTokens`, the default for sequence-level tasks)
/// the real tokens only (README, "Packed tokens"). To choose m, the
/// map is applied to every student layer **without** recording gradients, one layer at a time, and each result is
/// dropped once its row of ℓ is known; then the graph is built for the chosen student layers only (each once, even
/// when several teacher layers map to it). The L_s extra matrix products of the selection pass are the price of
/// never holding L_s × |teacher layers| graphs.
public struct LayerDistillation {
    public var transformation: LayerTransformation
    /// The distilled teacher layers (1-based, strictly increasing); nil = `LayerMapping.defaultTeacherLayers` of
    /// the teacher's depth.
    public var teacherLayers: [Int]?
    public var version: LayerMappingVersion

    public init(transformation: LayerTransformation, teacherLayers: [Int]? = nil, version: LayerMappingVersion = .v4) {
        self.transformation = transformation
        self.teacherLayers = teacherLayers
        self.version = version
    }

    /// One step: ℓ for all pairs, the mapping, and L_layer through the chosen pairs.
    /// - Parameters:
    ///   - student: the student's hidden states [embeddings, layer 1 … L_s], each [N, D_s] (N = B·T, or the packed tokens).
    ///   - teacher: the teacher's hidden states [embeddings, layer 1 … L_t], each [N, D_t] (constants).
    ///   - exists: for v4, which student layers exist in this step's mask sample (`LayerMapping.existingLayers`);
    ///     nil = all.
    ///   - reduce: in a data-parallel run, sums each rank's share of ℓ (flattened row by row) over the ranks, so
    ///     the mapping is chosen from the global batch's ℓ; nil uses this batch's.
    public func callAsFunction(student: [Variable], teacher: [Tensor], exists: [Bool]? = nil,
                               reduce: (([Double]) -> [Double])? = nil) throws -> LayerDistillationResult {
        let layers = try resolvedTeacherLayers(student: student, teacher: teacher)
        if let exists, exists.count != student.count - 1 {
            throw DistillationError("layer distillation: existence flags for \(exists.count) layers, but the student "
                + "has \(student.count - 1)")
        }
        var losses = pairLosses(student: student, teacher: teacher, teacherLayers: layers)
        if let reduce {
            let width = student.count - 1
            let summed = reduce(losses.flatMap { $0 })
            losses = losses.indices.map { Array(summed[($0 * width)..<(($0 + 1) * width)]) }
        }
        let mapping = LayerMapping.select(losses: losses, version: version, exists: exists)
        let loss = try self.loss(student: student, teacher: teacher, teacherLayers: layers, mapping: mapping)
        return LayerDistillationResult(loss: loss, teacherLayers: layers, mapping: mapping, pairLosses: losses)
    }

    /// L_layer = Σ_i MSE(W_layer·H_s^{mapping[i]}, H_t^{teacherLayers[i]}) for a given mapping, with gradients into
    /// the chosen student hidden states and W_layer. The map is applied once per distinct student layer.
    public func loss(student: [Variable], teacher: [Tensor], teacherLayers: [Int], mapping: [Int]) throws -> Variable {
        try validate(student: student, teacher: teacher, teacherLayers: teacherLayers)
        guard mapping.count == teacherLayers.count, !mapping.isEmpty,
              mapping.allSatisfy({ $0 >= 1 && $0 < student.count }) else {
            throw DistillationError("layer distillation: mapping \(mapping) for teacher layers \(teacherLayers) and "
                + "\(student.count - 1) student layers")
        }
        var mapped: [Int: Variable] = [:]
        var total: Variable?
        for (i, j) in zip(teacherLayers, mapping) {
            let y = mapped[j] ?? transformation(student[j])
            mapped[j] = y
            let term = meanSquaredError(y, target: teacher[i])
            total = total.map { $0 + term } ?? term
        }
        return total!
    }

    /// ℓ[i][j − 1] = MSE(W_layer·H_s^j, H_t^i) for the given teacher layers and every student layer j = 1…L_s,
    /// without gradients. Holds one mapped student layer at a time.
    public func pairLosses(student: [Variable], teacher: [Tensor], teacherLayers: [Int]) -> [[Double]] {
        var losses = [[Double]](repeating: [Double](repeating: 0, count: student.count - 1), count: teacherLayers.count)
        withoutGradients {
            for j in 1..<student.count {
                let y = transformation(student[j]).value
                for (r, i) in teacherLayers.enumerated() {
                    losses[r][j - 1] = squaredDistance(y, teacher[i]) / Double(max(y.count, 1))
                }
            }
        }
        return losses
    }

    /// The configured teacher layers, or the default for the teacher's depth, after checking every shape.
    public func resolvedTeacherLayers(student: [Variable], teacher: [Tensor]) throws -> [Int] {
        let layers = teacherLayers ?? LayerMapping.defaultTeacherLayers(teacherLayerCount: max(teacher.count - 1, 0))
        try validate(student: student, teacher: teacher, teacherLayers: layers)
        return layers
    }

    private func validate(student: [Variable], teacher: [Tensor], teacherLayers: [Int]) throws {
        guard student.count >= 2 else {
            throw DistillationError("layer distillation: the student has no layers (\(student.count) hidden states)")
        }
        guard teacher.count >= 2 else {
            throw DistillationError("layer distillation: the teacher has no layers (\(teacher.count) hidden states)")
        }
        let Lt = teacher.count - 1
        guard !teacherLayers.isEmpty, teacherLayers.allSatisfy({ $0 >= 1 && $0 <= Lt }),
              zip(teacherLayers, teacherLayers.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw DistillationError("layer distillation: teacher layers \(teacherLayers) must be strictly increasing "
                + "layer numbers in 1...\(Lt) (the teacher has \(Lt) layers)")
        }
        let Ds = transformation.studentWidth, Dt = transformation.teacherWidth
        let rows = student[0].shape.first ?? 0
        for (j, h) in student.enumerated() where h.shape != [rows, Ds] {
            throw DistillationError("layer distillation: student hidden state \(j) is \(h.shape); layer_transformation "
                + "reads [N, \(Ds)] with N = \(rows)")
        }
        for (i, h) in teacher.enumerated() where h.shape != [rows, Dt] {
            throw DistillationError("layer distillation: teacher hidden state \(i) is \(h.shape); expected "
                + "[\(rows), \(Dt)] (same tokens as the student, layer_transformation writes \(Dt))")
        }
    }
}

/// Σ (a − b)² over all elements: Float sums over fixed blocks of 4096 (run in parallel), added in Double, so the
/// result does not depend on the number of threads.
func squaredDistance(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.count == b.count, "squaredDistance: \(a.count) vs \(b.count) elements")
    let n = a.count, block = 4096
    let blocks = (n + block - 1) / block
    var partial = [Double](repeating: 0, count: blocks)
    partial.withUnsafeMutableBufferPointer { pb in
        let out = SharedPointer(pb.baseAddress!)
        a.withPointer { ap in b.withPointer { bp in
            Parallel.forChunks(blocks, grain: 16) { range in
                for k in range {
                    var s: Float = 0
                    for e in (k * block)..<min(n, (k + 1) * block) { let d = ap[e] - bp[e]; s += d * d }
                    out.base[k] = Double(s)
                }
            }
        } }
    }
    return partial.reduce(0, +)
}

// MARK: - Total loss

/// Hyper-parameters of the distillation loss. Defaults reproduce the paper (project decision 4):
/// T = 2 (`run_CoFi.sh`; the args default 2/3 is a trap, P5), α_layer = 0.9 and α_ce = 0.1 (the reference's
/// argument defaults, the README's example command and the first entry of its grid
/// {(0.9, 0.1), (0.7, 0.3), (0.5, 0.5)}), mapping v4 with the fixed existence test (decision 3), the default teacher
/// layers, and no label loss (decision 6).
public struct DistillationConfig: Equatable, Codable, Sendable {
    /// T of the prediction KL (classification and span).
    public var temperature: Float = 2
    /// α_ce: weight of the prediction loss L_pred.
    public var predictionWeight: Float = 0.1
    /// α_layer: weight of the layer loss L_layer; 0 turns layer distillation off (no transformation needed).
    public var layerWeight: Float = 0.9
    /// α_label: weight of the task's own loss on the gold labels (CE / MSE / span CE); 0 = off.
    public var labelWeight: Float = 0
    public var mappingVersion: LayerMappingVersion = .v4
    /// Distilled teacher layers (1-based, strictly increasing); nil = ⌈k·L/4⌉, k = 1…4.
    public var teacherLayers: [Int]? = nil

    public init(temperature: Float = 2, predictionWeight: Float = 0.1, layerWeight: Float = 0.9,
                labelWeight: Float = 0, mappingVersion: LayerMappingVersion = .v4, teacherLayers: [Int]? = nil) {
        self.temperature = temperature
        self.predictionWeight = predictionWeight
        self.layerWeight = layerWeight
        self.labelWeight = labelWeight
        self.mappingVersion = mappingVersion
        self.teacherLayers = teacherLayers
    }
}

/// Gold labels of a batch, for the optional label loss.
public enum LabelTargets: Equatable, Sendable {
    /// Class ids [B] (classification: cross-entropy).
    case classes([Int])
    /// Targets [B] (regression: MSE).
    case values([Float])
    /// Answer start and end token positions [B] (span). As HF `BertForQuestionAnswering`: positions are clamped to
    /// 0…T and position T is ignored; the loss is the mean of the start and end cross-entropies.
    case spans(start: [Int], end: [Int])

    /// The labels of a task batch.
    public init(_ labels: BatchLabels) {
        switch labels {
        case .classes(let c): self = .classes(c)
        case .values(let v): self = .values(v.map { Float($0) })
        }
    }
}

/// The task's own supervised loss on gold labels: cross-entropy, MSE, or the mean of the start and end
/// cross-entropies (positions clamped to 0…T, T ignored).
public func labelLoss(_ output: BertOutput, head: TaskHeadKind, labels: LabelTargets) throws -> Variable {
    switch (head, labels) {
    case (.classification, .classes(let y)):
        guard let logits = output.logits, logits.shape.first == y.count else {
            throw DistillationError("label loss: \(y.count) class labels for logits \(output.logits?.shape ?? [])")
        }
        return crossEntropy(logits, labels: y)
    case (.regression, .values(let y)):
        guard let logits = output.logits, logits.value.count == y.count else {
            throw DistillationError("label loss: \(y.count) regression targets for predictions \(output.logits?.shape ?? [])")
        }
        return meanSquaredError(logits, target: Tensor(shape: logits.shape, scalars: y))
    case (.span, .spans(let start, let end)):
        guard let s = output.startLogits, let e = output.endLogits, s.shape.count == 2,
              s.shape[0] == start.count, start.count == end.count else {
            throw DistillationError("label loss: \(start.count) start / \(end.count) end positions for span logits "
                + "\(output.startLogits?.shape ?? [])")
        }
        let T = s.shape[1]
        let clamp = { (p: Int) in min(max(p, 0), T) }
        return 0.5 * (crossEntropy(s, labels: start.map(clamp), ignoreIndex: T)
            + crossEntropy(e, labels: end.map(clamp), ignoreIndex: T))
    default:
        throw DistillationError("label loss: labels \(labels) do not fit a \(head) head")
    }
}

/// One step's distillation loss and its parts (scalars, for logging).
public struct DistillationLossParts {
    /// α_ce·L_pred + α_layer·L_layer + α_label·L_label, the value to back-propagate.
    public var total: Variable
    /// L_pred (unweighted).
    public var prediction: Variable
    /// L_layer (unweighted) with its mapping, or nil when layer distillation is off.
    public var layer: LayerDistillationResult?
    /// L_label (unweighted), or nil when off.
    public var label: Variable?

    /// Name and value of each part: `loss`, `distill_pred`, `distill_layer`, `label_loss` (present parts only).
    public var logValues: [(String, Float)] {
        var out = [("loss", total.value.scalar), ("distill_pred", prediction.value.scalar)]
        if let layer { out.append(("distill_layer", layer.loss.value.scalar)) }
        if let label { out.append(("label_loss", label.value.scalar)) }
        return out
    }
}

/// The full distillation objective of one step (cofi-spec §5 and §11): prediction + layer distillation (+ the
/// optional label loss). The Lagrangian term is added by the pruning stage, not here.
public struct DistillationLoss {
    public var config: DistillationConfig
    public var head: TaskHeadKind
    /// Nil when `config.layerWeight` is 0.
    public var layerDistillation: LayerDistillation?

    /// - Parameter transformation: W_layer; required when `config.layerWeight` ≠ 0. Build it with
    ///   `LayerTransformation(studentWidth:teacherWidth:)` (identity; throws when the widths differ) or load it.
    public init(config: DistillationConfig = DistillationConfig(), head: TaskHeadKind,
                transformation: LayerTransformation?) throws {
        self.config = config
        self.head = head
        if config.layerWeight != 0 {
            guard let transformation else {
                throw DistillationError("layer distillation (α_layer = \(config.layerWeight)) needs a layer_transformation")
            }
            layerDistillation = LayerDistillation(transformation: transformation, teacherLayers: config.teacherLayers,
                                                  version: config.mappingVersion)
        }
    }

    /// The layer transformation's parameters (empty when layer distillation is off), for the MODEL optimiser group.
    public var parameters: [(String, Variable)] { layerDistillation?.transformation.parameters ?? [] }

    /// The loss of one step.
    /// - Parameters:
    ///   - student: the student's forward pass (with gradients).
    ///   - teacher: the teacher's forward pass on the same batch (its values are used as constants).
    ///   - masks: this step's mask sample, or nil (pre-pruning, fine-tuning): v4 reads which layers exist from it.
    ///   - labels: gold labels; required when `config.labelWeight` ≠ 0.
    ///   - reducePairLosses: in a data-parallel run, the sum over the ranks of their shares of the layer
    ///     mapping's pair losses (`LayerDistillation`).
    public func callAsFunction(student: BertOutput, teacher: BertOutput, masks: MaskSet? = nil,
                               labels: LabelTargets? = nil,
                               reducePairLosses: (([Double]) -> [Double])? = nil) throws -> DistillationLossParts {
        let prediction = try predictionDistillationLoss(student: student, teacher: teacher, head: head,
                                                        temperature: config.temperature)
        var layer: LayerDistillationResult?
        if let layerDistillation {
            let studentLayers = student.hiddenStates.count - 1
            if let masks, masks.attentionLayers.count != studentLayers || masks.ffnLayers.count != studentLayers {
                throw DistillationError("layer distillation: the mask set has \(masks.attentionLayers.count) layers, "
                    + "the student \(studentLayers)")
            }
            let exists = LayerMapping.existingLayers(masks: masks, layerCount: studentLayers)
            let result = try layerDistillation(student: student.hiddenStates, teacher: teacher.hiddenStates.map(\.value),
                                               exists: exists, reduce: reducePairLosses)
            layer = result
        }
        var label: Variable?
        if config.labelWeight != 0 {
            guard let labels else {
                throw DistillationError("label loss (α_label = \(config.labelWeight)) needs the batch's labels")
            }
            label = try labelLoss(student, head: head, labels: labels)
        }
        return DistillationLossParts(total: total(prediction: prediction, layer: layer?.loss, label: label),
                                     prediction: prediction, layer: layer, label: label)
    }

    /// α_ce·L_pred + α_layer·L_layer + α_label·L_label, the per-example parts (prediction, label) scaled by
    /// `exampleWeight` and the layer MSE by `tokenWeight`: a data-parallel rank's shares of the global batch's
    /// examples and of its token rows (`BatchShard`); both 1 for a whole batch.
    public func total(prediction: Variable, layer: Variable?, label: Variable?, exampleWeight: Float = 1,
                      tokenWeight: Float = 1) -> Variable {
        func weighted(_ x: Variable, _ w: Float) -> Variable { w == 1 ? x : w * x }
        var t = weighted(config.predictionWeight * prediction, exampleWeight)
        if let layer { t = t + weighted(config.layerWeight * layer, tokenWeight) }
        if let label { t = t + weighted(config.labelWeight * label, exampleWeight) }
        return t
    }
}

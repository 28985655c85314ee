import BERT
import Foundation
import Tensor
import Training

/// The loss of every CoFi stage (cofi-spec §4, §5, §11) as a `TrainingObjective` for the shared trainer.
///
/// Per step: the frozen teacher runs in inference mode without gradients (its hidden states and predictions are
/// constants); the student runs in training mode, with ONE hard-concrete sample of every gate when a sparsity
/// controller is attached (the pruning stage), shared by the whole batch; the loss is the distillation loss
/// (α_ce·L_pred + α_layer·L_layer, + α_label·L_label when asked) plus, while pruning, the Lagrangian
/// L_c = λ1·(ŝ − t) + λ2·(ŝ − t)² at the warmed-up target t(k).
///
/// Optimiser groups (cofi-spec §4): the model optimiser trains every model parameter except the embeddings (always
/// frozen, as the reference hard-codes) plus the layer transformation, with the run's lr and schedule, and is the
/// only one clipped; while pruning, `l0` (log α, +reg lr, constant) and `lagrangian` (λ, −reg lr, constant) step
/// after it, in that order; log α is clamped after every step.
///
/// Exact resume: the mask noise of step k comes from `Xoshiro256(maskSeed(seed, step: k))`, and the checkpoint
/// keeps log α, λ, the controller's fixed values and the layer transformation (`checkpointTensors`).
public final class PruningObjective: TrainingObjective {
    public let teacher: BertModel
    public let distillation: DistillationLoss
    /// Nil outside the pruning stage (pre-pruning distillation and the compact model's fine-tuning): no masks.
    public let controller: SparsityController?
    public let seed: UInt64
    private let optimizers: [(name: String, optimizer: AdamW)]
    /// The teacher's outputs shared by a ladder's fine-tuning stages (nil: computed every step).
    public var teacherCache: TeacherOutputCache?
    private var last: [String: Double] = [:]

    /// - Parameters:
    ///   - teacher: the fine-tuned teacher; never updated.
    ///   - distillation: the loss and its layer transformation (trained with the model parameters).
    ///   - controller: the gates and multipliers when pruning; its two optimisers are created here (so their bias
    ///     corrections count from the first pruning step, as the reference's do).
    ///   - regLearningRate: the log α rate (λ gets its negative); scaled by the controller's budget-aware option.
    public init(teacher: BertModel, distillation: DistillationLoss, controller: SparsityController? = nil,
                regLearningRate: Float = 0.01, seed: UInt64 = 57) {
        self.teacher = teacher
        self.distillation = distillation
        self.controller = controller
        self.seed = seed
        if let controller {
            optimizers = controller.optimizerGroups(regLearningRate: regLearningRate).map { group in
                (name: group.name, optimizer: AdamW(groups: [group]))
            }
        } else {
            optimizers = []
        }
    }

    /// Model parameters without the embeddings (cofi-spec §4: every name containing "embeddings" is left out),
    /// then the layer transformation.
    public func trainableParameters(of model: BertModel) -> [(String, Variable)] {
        model.namedParameters.filter { !$0.0.contains("embeddings") } + distillation.parameters
    }

    /// The seed of step k's mask noise (apart from the dropout seeds: another salt).
    public static func maskSeed(_ seed: UInt64, step: Int) -> UInt64 {
        Trainer.dropoutSeed(seed ^ 0x5EED_0F_C0F1_6A7E, step: step)
    }

    public func loss(model: BertModel, batch: TrainingBatch, mode: inout ForwardMode, step: Int) -> Variable {
        // Both models run on the same tokens: the real ones when the run packs them (then layer distillation
        // compares the real tokens' states; project decision, cofi-spec §5 compares every padded position).
        let packs = mode.packsTokens
        func runTeacher() -> BertOutput {
            withoutGradients { () -> BertOutput in
                var inference = ForwardMode.inference
                inference.packsTokens = packs
                return teacher(batch.inputs, mode: &inference)
            }
        }
        let teacherOut = teacherCache?.output(step: step, indices: batch.indices, packs: packs, compute: runTeacher) ?? runTeacher()
        var masks: MaskSet?
        if let controller {
            var rng = Xoshiro256(seed: Self.maskSeed(seed, step: step))
            masks = controller.l0.sample(using: &rng)
        }
        let studentOut = model(batch.inputs, masks: masks, mode: &mode)
        var labels: LabelTargets?
        switch batch.targets {
        case .classes(let k)?: labels = .classes(k)
        case .values(let v)?: labels = .values(v.map { Float($0) })
        case let .spans(start, end)?: labels = .spans(start: start, end: end)
        case nil: labels = nil
        }
        let parts: DistillationLossParts
        let shard = batch.shard
        // A rank's share of a mean over the batch: its rows' fraction for the per-example losses, its token rows'
        // fraction for the layer MSE (the same unless the passes are packed). Whether they pack is the run's
        // choice, the same on every rank (a rank whose rows have no padding runs them whole, and counts them so).
        let tokenFraction = shard?.tokenFraction(packed: model.packsTokens(in: mode)) ?? 1
        let reduce = shard.map { s in { (v: [Double]) in s.sum(v.map { $0 * tokenFraction }) } }
        do {
            parts = try distillation(student: studentOut, teacher: teacherOut, masks: masks, labels: labels,
                                     reducePairLosses: reduce)
        } catch {
            preconditionFailure("distillation: \(error)")  // shapes are checked when the pipeline is built
        }
        var values: [String: Double] = [:]
        let logged = parts.logValues.filter { $0.0 != "loss" }
        let logSums = shard.map { s in
            s.sum(logged.map { Double($0.1) * ($0.0 == "distill_layer" ? tokenFraction : s.fraction) })
        } ?? logged.map { Double($0.1) }
        for ((k, _), v) in zip(logged, logSums) { values[k] = v }
        var total = shard.map {
            distillation.total(prediction: parts.prediction, layer: parts.layer?.loss, label: parts.label,
                               exampleWeight: $0.weight, tokenWeight: Float(tokenFraction))
        } ?? parts.total
        if let controller {
            let reg = controller.regularization(pruningStep: step)
            // The Lagrangian does not depend on the batch: in a data-parallel run the lead rank alone adds it.
            if shard?.isLead ?? true { total = total + reg.loss }
            values["lagrangian"] = Double(reg.loss.value.scalar)
            if let latency = controller.measure as? LatencyModel {
                // The controller's measure is the latency reduction; the log keeps ŝ the size's.
                values["expected_sparsity"] = controller.l0.sizeModel.expectedValue(controller.l0)
                values["expected_latency_ms"] = latency.latency(ofReduction: Double(reg.expectedSparsity.value.scalar))
                values["target_latency_ms"] = latency.latency(ofReduction: Double(reg.target))
                if let second = controller.secondary {
                    values["target_sparsity"] = Double(second.target.value(atPruningStep: step))
                    values["lambda_size"] = Double(controller.secondaryLambda)
                }
            } else {
                values["expected_sparsity"] = Double(reg.expectedSparsity.value.scalar)
                values["target_sparsity"] = Double(reg.target)
            }
            values["lambda_1"] = Double(controller.lagrangian.lambda1.value.scalar)
            values["lambda_2"] = Double(controller.lagrangian.lambda2.value.scalar)
            if controller.options.antiWindup { values["lambda_1_held"] = controller.lambda1Held ? 1 : 0 }
        }
        last = values
        return total
    }

    public var auxiliaryOptimizers: [(name: String, optimizer: AdamW)] { optimizers }

    /// An empty shard's part of the step's collectives: zeros for the layer mapping's pair losses (when layer
    /// distillation is on) and for the logged loss parts, as `loss` sums them; and the controller's step (its
    /// anti-windup memory), so that its state stays the lead rank's.
    public func emptyShardStep(model: BertModel, shard: BatchShard, step: Int) {
        _ = controller?.regularization(pruningStep: step)
        if let layer = distillation.layerDistillation {
            let teacherLayers = layer.teacherLayers
                ?? LayerMapping.defaultTeacherLayers(teacherLayerCount: teacher.shape.layers.count)
            _ = shard.sum([Double](repeating: 0, count: teacherLayers.count * model.shape.layers.count))
        }
        let parts = 1 + (distillation.layerDistillation == nil ? 0 : 1) + (distillation.config.labelWeight != 0 ? 1 : 0)
        _ = shard.sum([Double](repeating: 0, count: parts))
    }

    /// With the tracking controller: λ for this step and the gates' gradients (`SparsityController.steerGates`).
    public func beforeOptimizerStep(step: Int) {
        guard let controller, controller.options.tracking, let l0 = optimizers.first(where: { $0.name == "l0" }) else {
            return
        }
        let lambda = controller.steerGates(pruningStep: step, optimizer: l0.optimizer)
        last["lambda_1"] = Double(lambda)
        last["lambda_2"] = 0
        if controller.secondary != nil { last["lambda_size"] = Double(controller.secondaryLambda) }
    }

    public func afterOptimizerStep(step: Int) { controller?.afterOptimizerStep() }

    /// The controller's state (log α, λ, ramp start, δ(t)) and the layer transformation.
    public var checkpointTensors: [String: Tensor] {
        var t = controller?.state ?? [:]
        for (name, v) in distillation.parameters { t[name] = v.value }
        return t
    }

    public func restore(checkpointTensors t: [String: Tensor]) throws {
        if let controller { try controller.load(state: t) }
        for (name, v) in distillation.parameters {
            guard let saved = t[name] else { throw TrainerError("the checkpoint lacks '\(name)'") }
            guard saved.shape == v.shape else {
                throw TrainerError("'\(name)' has shape \(saved.shape) in the checkpoint, expected \(v.shape)")
            }
            v.assign(saved)
        }
    }

    /// The last step's parts: distill_pred, distill_layer (, label_loss), and while pruning lagrangian,
    /// expected_sparsity, target_sparsity, lambda_1, lambda_2 (and lambda_1_held, 1 when the anti-windup rule held
    /// λ1 on the step).
    public var logScalars: [String: Double] { last }
}

import BERT
import Foundation
import Tasks
import Tensor

// What the trainer feeds the model and what it minimises. The trainer owns the loop (order of examples, dropout
// streams, optimiser steps, clipping, evaluation, checkpoints); a `TrainingObjective` owns the loss and any
// parameters of its own, so later stages (CoFi's distillation + Lagrangian with mask and λ optimisers) plug in
// without touching the loop.

/// The gold targets of one training batch, in row order.
public enum TrainingTargets: Equatable, Sendable {
    /// Class indices [B].
    case classes([Int])
    /// Regression targets [B].
    case values([Double])
    /// Extractive QA: start and end token positions [B] (positions ≥ T are ignored, as Hugging Face does).
    case spans(start: [Int], end: [Int])
}

/// One padded batch for a training step: model inputs `[B, T]`, targets and the dataset index of each row.
public struct TrainingBatch {
    public var inputs: BertBatch
    public var targets: TrainingTargets?
    public var indices: [Int]
    /// In a data-parallel run, where these rows lie in the step's global batch (`DataParallel.shard`); nil when
    /// the batch is the whole batch.
    public var shard: BatchShard?

    public init(inputs: BertBatch, targets: TrainingTargets?, indices: [Int]) {
        self.inputs = inputs
        self.targets = targets
        self.indices = indices
    }

    /// Rows B.
    public var size: Int { inputs.batch }
}

/// A training set cut into batches, deterministically per epoch: the trainer resumes mid-epoch by rebuilding
/// `order(epoch:)` and skipping the batches already taken.
public protocol TrainingData {
    /// Examples in one epoch (for examples/s and the start record).
    var exampleCount: Int { get }
    /// Batches in every epoch.
    var batchCount: Int { get }
    /// The epoch's batches as positions into the data; the same for the same epoch, every time.
    func order(epoch: Int) -> [[Int]]
    /// The padded batch of `positions`.
    func trainingBatch(_ positions: [Int]) -> TrainingBatch
}

extension Batcher: TrainingData {
    public var exampleCount: Int { examples.count }

    public func trainingBatch(_ positions: [Int]) -> TrainingBatch {
        let b = batch(positions)
        let targets: TrainingTargets?
        switch b.labels {
        case .classes(let k)?: targets = .classes(k)
        case .values(let v)?: targets = .values(v)
        case nil: targets = nil
        }
        return TrainingBatch(inputs: b.inputs, targets: targets, indices: b.indices)
    }
}

/// The loss a trainer minimises, and whatever the objective trains besides the model.
///
/// The trainer calls, per step: `loss` (training mode, the step's dropout stream) → `backward` → clip the model
/// parameters (`trainableParameters`) to the max norm → `beforeOptimizerStep` → model optimiser step with the schedule → each of
/// `auxiliaryOptimizers` in order (not clipped; a group whose `followsSchedule` is false keeps its rate) →
/// clear every gradient → `afterOptimizerStep`. CoFi (cofi-spec §4) fits this shape: the model optimiser without
/// embeddings, then log α, then λ with a negative rate, then the log α clamp.
public protocol TrainingObjective: AnyObject {
    /// The model parameters the model optimiser trains and clips, with their checkpoint names.
    func trainableParameters(of model: BertModel) -> [(String, Variable)]
    /// The scalar loss of `batch`; `step` is the 0-based optimiser step about to be taken. With `batch.shard`, the
    /// rank's part of the global batch's loss (`BatchShard`): batch means weighted by `shard.weight`,
    /// batch-independent terms on the lead rank only, and the same `shard.sum` calls on every rank.
    func loss(model: BertModel, batch: TrainingBatch, mode: inout ForwardMode, step: Int) -> Variable
    /// A data-parallel rank whose shard of the step's batch is empty (the batch has fewer rows than there are
    /// ranks): makes the same `shard.sum` calls `loss` makes, with zeros, and nothing else.
    func emptyShardStep(model: BertModel, shard: BatchShard, step: Int)
    /// Optimisers of the objective's own parameters, stepped after the model's; their state is checkpointed
    /// under `name`.
    var auxiliaryOptimizers: [(name: String, optimizer: AdamW)] { get }
    /// Runs after the backward pass (and, in a data-parallel run, the gradients' reduction, so every rank sees the
    /// same gradients) and the clipping, before any optimiser steps; `step` is the 0-based step about to be taken.
    /// It may rewrite the gradients of the objective's own parameters.
    func beforeOptimizerStep(step: Int)
    /// Runs after every optimiser step (gradients already cleared); `step` is the 0-based step just taken.
    func afterOptimizerStep(step: Int)
    /// Tensors the objective needs to continue a run (its own parameters), saved with each checkpoint.
    var checkpointTensors: [String: Tensor] { get }
    /// Restores `checkpointTensors` on resume.
    func restore(checkpointTensors: [String: Tensor]) throws
    /// Scalars to log with the training loss (the last step's values), e.g. loss components.
    var logScalars: [String: Double] { get }
}

extension TrainingObjective {
    public func trainableParameters(of model: BertModel) -> [(String, Variable)] { model.namedParameters }
    public var auxiliaryOptimizers: [(name: String, optimizer: AdamW)] { [] }
    public func beforeOptimizerStep(step: Int) {}
    public func afterOptimizerStep(step: Int) {}
    public func emptyShardStep(model: BertModel, shard: BatchShard, step: Int) {}
    public var checkpointTensors: [String: Tensor] { [:] }
    public func restore(checkpointTensors: [String: Tensor]) throws {}
    public var logScalars: [String: Double] { [:] }
}

/// The task's own loss, as Hugging Face's task models compute it: cross-entropy for classification, MSE of the
/// single output for regression, and the mean of the start and end cross-entropies for span extraction (positions
/// clamped to T and then ignored, `BertForQuestionAnswering`).
public final class TaskLossObjective: TrainingObjective {
    public init() {}

    public func loss(model: BertModel, batch: TrainingBatch, mode: inout ForwardMode, step: Int) -> Variable {
        guard let targets = batch.targets else { preconditionFailure("a training batch needs targets") }
        let out = model(batch.inputs, mode: &mode)
        let loss = Self.loss(out, targets: targets, seqLen: batch.inputs.seqLen)
        guard let shard = batch.shard else { return loss }
        return shard.weight * loss
    }

    /// The task loss of a forward pass's outputs (shared with evaluation).
    public static func loss(_ out: BertOutput, targets: TrainingTargets, seqLen: Int) -> Variable {
        switch targets {
        case .classes(let k):
            guard let logits = out.logits else { preconditionFailure("class targets need a classification head") }
            return crossEntropy(logits, labels: k)
        case .values(let v):
            guard let logits = out.logits else { preconditionFailure("regression targets need a regression head") }
            return meanSquaredError(logits, target: Tensor(shape: logits.shape, scalars: v.map(Float.init)))
        case let .spans(start, end):
            guard let s = out.startLogits, let e = out.endLogits else { preconditionFailure("span targets need a span head") }
            let clamp = { (p: Int) in min(max(p, 0), seqLen) }
            let ls = crossEntropy(s, labels: start.map(clamp), ignoreIndex: seqLen)
            let le = crossEntropy(e, labels: end.map(clamp), ignoreIndex: seqLen)
            return 0.5 * (ls + le)
        }
    }
}

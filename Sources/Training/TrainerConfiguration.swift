import Foundation

/// A training run that cannot start or go on: the message names the value, file or step at fault.
public struct TrainerError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The hyper-parameters of a run, with Hugging Face `TrainingArguments` defaults except where CoFi's teacher recipe
/// (cofi-spec §6: lr 2e-5, batch 32, 5 epochs, seed 57, linear schedule) sets them. Saved in `trainer_state.json`;
/// `--resume` requires the same values. JSON keys are snake_case.
public struct TrainerConfiguration: Codable, Equatable, Sendable {
    public enum Schedule: String, Codable, Sendable, CaseIterable {
        /// Linear warm-up from 0, then linear decay to 0 at the last step (`get_linear_schedule_with_warmup`).
        case linear
        /// Linear warm-up from 0, then constant (`get_constant_schedule_with_warmup`; no warm-up: constant).
        case constant
    }

    /// Peak learning rate of the model parameters.
    public var learningRate: Float = 2e-5
    /// Training examples per optimiser step.
    public var batchSize: Int = 32
    /// Passes over the training set (ignored when `maxSteps` is set).
    public var epochs: Int = 5
    /// Optimiser steps in all; overrides `epochs` (the last epoch may be partial).
    public var maxSteps: Int?
    public var schedule: Schedule = .linear
    /// Warm-up as a fraction of the total steps, rounded up (Hugging Face: `ceil(total · ratio)`).
    public var warmupRatio: Double = 0
    /// Warm-up steps; overrides `warmupRatio`.
    public var warmupSteps: Int?
    /// Decoupled weight decay, not applied to biases and LayerNorm weights.
    public var weightDecay: Float = 0
    public var adamBeta1: Float = 0.9
    public var adamBeta2: Float = 0.999
    public var adamEpsilon: Float = 1e-8
    /// Global L2 norm the model parameters' gradients are clipped to.
    public var maxGradNorm: Float = 1
    /// Seeds shuffling (epoch e: `Xoshiro256(seed &+ e)`), dropout (`Trainer.dropoutSeed`) and a new head.
    public var seed: UInt64 = 57
    /// Evaluate (and checkpoint) every this many steps; nil: only at epoch ends.
    public var evalSteps: Int?
    /// Evaluate (and checkpoint) at the end of each epoch.
    public var evaluateEachEpoch: Bool = true
    /// Also write checkpoint/ (without evaluating) every this many steps; nil: at evaluations and epoch ends only.
    public var saveSteps: Int?
    /// Evaluate once before the first step (CoFi's pruning stage does, cofi-spec §6).
    public var evaluateAtStart: Bool = false
    /// At this 0-based step the model optimiser is created afresh (moments and bias correction reset) and the
    /// schedule starts over for the remaining steps, warm-up included: CoFi re-creates its model optimiser when
    /// pruning begins after the pre-pruning steps (cofi-spec §6, 1b). nil: never.
    public var modelOptimizerRestartStep: Int?
    /// Log the mean training loss every this many steps (metrics.jsonl and the non-TTY progress line).
    public var loggingSteps: Int = 50
    /// Train on the real tokens only (`ForwardMode.packsTokens`: sequence-level heads; span heads read every
    /// position and stay padded). Nil or true: packed; false: padded batches, as the reference runs them. Task
    /// losses differ by rounding only; layer distillation then averages over the real tokens (README, "Packed
    /// tokens").
    public var packTokens: Bool?

    public init() {}

    /// Whether training steps run on packed tokens.
    public var packsTokens: Bool { packTokens ?? true }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case learningRate = "learning_rate", batchSize = "batch_size", epochs, maxSteps = "max_steps", schedule
        case warmupRatio = "warmup_ratio", warmupSteps = "warmup_steps", weightDecay = "weight_decay"
        case adamBeta1 = "adam_beta1", adamBeta2 = "adam_beta2", adamEpsilon = "adam_epsilon"
        case maxGradNorm = "max_grad_norm", seed, evalSteps = "eval_steps", evaluateEachEpoch = "evaluate_each_epoch"
        case saveSteps = "save_steps", evaluateAtStart = "evaluate_at_start"
        case modelOptimizerRestartStep = "model_optimizer_restart_step", loggingSteps = "logging_steps"
        case packTokens = "pack_tokens"
    }

    /// Rejects values a run cannot use, naming the field and the value.
    public func validate() throws {
        func fail(_ key: CodingKeys, _ value: Any, _ expected: String) -> TrainerError {
            TrainerError("\(key.rawValue) is \(value); expected \(expected)")
        }
        guard learningRate.isFinite && learningRate > 0 else { throw fail(.learningRate, learningRate, "a finite positive number") }
        guard batchSize > 0 else { throw fail(.batchSize, batchSize, "a positive number of examples") }
        if let maxSteps {
            guard maxSteps > 0 else { throw fail(.maxSteps, maxSteps, "a positive number of steps") }
        } else {
            guard epochs > 0 else { throw fail(.epochs, epochs, "a positive number of epochs (or max_steps)") }
        }
        guard warmupRatio.isFinite && warmupRatio >= 0 && warmupRatio <= 1 else {
            throw fail(.warmupRatio, warmupRatio, "a number in [0, 1]")
        }
        if let warmupSteps, warmupSteps < 0 { throw fail(.warmupSteps, warmupSteps, "zero or more steps") }
        guard weightDecay.isFinite && weightDecay >= 0 else { throw fail(.weightDecay, weightDecay, "a finite number ≥ 0") }
        guard adamBeta1.isFinite && adamBeta1 >= 0 && adamBeta1 < 1 else { throw fail(.adamBeta1, adamBeta1, "a number in [0, 1)") }
        guard adamBeta2.isFinite && adamBeta2 >= 0 && adamBeta2 < 1 else { throw fail(.adamBeta2, adamBeta2, "a number in [0, 1)") }
        guard adamEpsilon.isFinite && adamEpsilon > 0 else { throw fail(.adamEpsilon, adamEpsilon, "a finite positive number") }
        guard maxGradNorm.isFinite && maxGradNorm > 0 else { throw fail(.maxGradNorm, maxGradNorm, "a finite positive number") }
        if let evalSteps, evalSteps <= 0 { throw fail(.evalSteps, evalSteps, "a positive number of steps") }
        if let saveSteps, saveSteps <= 0 { throw fail(.saveSteps, saveSteps, "a positive number of steps") }
        if let r = modelOptimizerRestartStep, r <= 0 {
            throw fail(.modelOptimizerRestartStep, r, "a step after the first (1 or more)")
        }
        guard loggingSteps > 0 else { throw fail(.loggingSteps, loggingSteps, "a positive number of steps") }
    }

    /// Optimiser steps of the run for `stepsPerEpoch` batches per epoch.
    public func totalSteps(stepsPerEpoch: Int) -> Int { maxSteps ?? epochs * stepsPerEpoch }

    /// Warm-up steps of a run of `totalSteps`.
    public func warmup(totalSteps: Int) -> Int {
        warmupSteps ?? Int((Double(totalSteps) * warmupRatio).rounded(.up))
    }

    /// Learning-rate multiplier of the 0-based optimiser step `step`, as the Hugging Face schedulers give it (from
    /// `modelOptimizerRestartStep` on, the schedule of a run of the remaining steps).
    public func learningRateMultiplier(step: Int, totalSteps: Int) -> Float {
        var step = step, total = totalSteps
        if let r = modelOptimizerRestartStep, step >= r {
            step -= r
            total -= r
        }
        let w = warmup(totalSteps: total)
        switch schedule {
        case .linear:
            return LearningRateSchedule.linear(warmupSteps: w, totalSteps: total).multiplier(atStep: step)
        case .constant:
            return step < w ? Float(step) / Float(max(1, w)) : 1
        }
    }

    /// The fields whose values differ from `other`, as "key: this vs other" (for `--resume` messages).
    public func differences(from other: TrainerConfiguration) -> [String] {
        let a = Self.fields(self), b = Self.fields(other)
        return CodingKeys.allCases.compactMap { key in
            let x = a[key.rawValue] ?? "none", y = b[key.rawValue] ?? "none"
            return x == y ? nil : "\(key.rawValue): \(x) vs \(y)"
        }
    }

    private static func fields(_ c: TrainerConfiguration) -> [String: String] {
        var f: [String: String] = [
            "learning_rate": "\(c.learningRate)", "batch_size": "\(c.batchSize)", "epochs": "\(c.epochs)",
            "schedule": c.schedule.rawValue, "warmup_ratio": "\(c.warmupRatio)", "weight_decay": "\(c.weightDecay)",
            "adam_beta1": "\(c.adamBeta1)", "adam_beta2": "\(c.adamBeta2)", "adam_epsilon": "\(c.adamEpsilon)",
            "max_grad_norm": "\(c.maxGradNorm)", "seed": "\(c.seed)", "evaluate_each_epoch": "\(c.evaluateEachEpoch)",
            "logging_steps": "\(c.loggingSteps)",
        ]
        f["max_steps"] = c.maxSteps.map { "\($0)" }
        f["warmup_steps"] = c.warmupSteps.map { "\($0)" }
        f["eval_steps"] = c.evalSteps.map { "\($0)" }
        f["save_steps"] = c.saveSteps.map { "\($0)" }
        f["evaluate_at_start"] = "\(c.evaluateAtStart)"
        f["model_optimizer_restart_step"] = c.modelOptimizerRestartStep.map { "\($0)" }
        f["pack_tokens"] = "\(c.packsTokens)"
        return f
    }
}

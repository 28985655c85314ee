import BERT
import Formats
import Foundation
import Tensor

/// One optimiser step, as reported to `Trainer.onStep`.
public struct StepRecord: Sendable {
    /// 1-based step number (steps taken after this one).
    public var step: Int
    /// Epochs done after this step, as a fraction.
    public var epoch: Double
    public var loss: Float
    /// Global gradient norm of the model parameters before clipping.
    public var gradientNorm: Float
    public var learningRate: Float
}

/// How a run ended.
public struct TrainingSummary: Sendable, CustomStringConvertible {
    public var steps: Int
    public var epochs: Double
    public var bestMetricName: String?
    public var bestMetric: Double?
    public var bestStep: Int?
    public var lastEvaluation: EvaluationResult?
    /// Wall-clock seconds of this call of `train()`.
    public var seconds: Double
    /// Wall-clock seconds in `train()` over the whole run (every resume included; see `TrainerState.wallSeconds`).
    public var wallSeconds: Double
    /// Seconds in training steps and in evaluation over the whole run (every resume included).
    public var trainSeconds: Double
    public var evaluationSeconds: Double
    /// Training examples per second of training-step time, over the whole run.
    public var examplesPerSecond: Double

    public var description: String {
        var s = "trained \(steps) steps (\(String(format: "%.2f", epochs)) epochs) in \(ProgressReporter.duration(seconds)); "
            + "\(String(format: "%.1f", examplesPerSecond)) examples/s"
        if let name = bestMetricName, let value = bestMetric, let step = bestStep {
            s += "; best \(name) \(String(format: "%.4f", value)) at step \(step)"
        }
        return s
    }
}

/// The training loop every stage reuses: seeded epochs of `data`, the loss of `objective` (task loss by default),
/// HF AdamW on the model parameters (no decay on biases and LayerNorm weights) with a linear or constant schedule,
/// gradient clipping, evaluation every `evalSteps` and at each epoch end with `evaluator`, `best/` kept by the
/// primary metric, `checkpoint/` at every evaluation and epoch end, and an exact `resume(from:)`.
///
/// Exactness: epoch e's order is `data.order(epoch: e)`, step k's dropout is `Xoshiro256(dropoutSeed(seed, k))`,
/// and the weights and moments are saved as exact float32, so a run resumed from any checkpoint takes the same
/// steps with the same losses as the uninterrupted run.
public final class Trainer {
    public let model: BertModel
    public let data: TrainingData
    public let configuration: TrainerConfiguration
    public let objective: TrainingObjective
    public let evaluator: Evaluator?
    /// Where checkpoints and metrics go; nil writes nothing.
    public let output: TrainingOutput?
    public let export: ModelExport
    /// The caller's description of the run (model, task, data, max length…); a resume must match it.
    public let arguments: [String: String]
    /// The model parameters the model optimiser trains and clips.
    public let trainableParameters: [(String, Variable)]
    /// The model optimiser (replaced at `modelOptimizerRestartStep`).
    public private(set) var optimizer: AdamW
    public let stepsPerEpoch: Int
    public let totalSteps: Int
    public private(set) var state: TrainerState
    /// The live progress line and messages; nil is silent.
    public var progress: ProgressReporter?
    /// Called after every step; throwing stops the run (the last checkpoint stays as it was).
    public var onStep: ((StepRecord) throws -> Void)?
    /// The command-line option that sets this run's learning rate, named when the loss diverges.
    public var learningRateOption = "--learning-rate"
    /// Data-parallel training over several processes (`DataParallel`); nil trains in this process alone. Only the
    /// lead rank (0) writes `checkpoint/` and metrics; every rank writes `best/` when it has an output (the pruning
    /// pipeline reads it back); set it before `resume` and `train`.
    public var parallel: DataParallel?

    private var resumed = false
    /// `state.wallSeconds` when `train()` was called, and the clock then; nil outside `train()`.
    private var wallClock: (base: Double, start: Double)?
    private var gradientHolders: [Variable] = []
    private var log: MetricsLog?

    /// Checks the configuration and the data; no file is touched until `train()`.
    public init(model: BertModel, data: TrainingData, configuration: TrainerConfiguration,
                objective: TrainingObjective = TaskLossObjective(), evaluator: Evaluator? = nil,
                output: TrainingOutput? = nil, export: ModelExport = ModelExport(), arguments: [String: String] = [:]) throws {
        try configuration.validate()
        guard data.exampleCount > 0, data.batchCount > 0 else {
            throw TrainerError("the training set has no examples")
        }
        self.model = model
        self.data = data
        self.configuration = configuration
        self.objective = objective
        self.evaluator = evaluator
        self.output = output
        self.export = export
        self.arguments = arguments
        trainableParameters = objective.trainableParameters(of: model)
        guard !trainableParameters.isEmpty else { throw TrainerError("the objective trains no model parameters") }
        optimizer = Self.modelOptimizer(trainableParameters, configuration)
        stepsPerEpoch = data.batchCount
        totalSteps = configuration.totalSteps(stepsPerEpoch: stepsPerEpoch)
        if let r = configuration.modelOptimizerRestartStep, r >= totalSteps {
            throw TrainerError("model_optimizer_restart_step is \(r); the run has only \(totalSteps) steps")
        }
        state = TrainerState(stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps, trainExamples: data.exampleCount,
                             seed: configuration.seed, rng: Self.rngDescription, configuration: configuration,
                             arguments: arguments)

        var seen = Set<ObjectIdentifier>()
        let all = model.namedParameters.map(\.1) + trainableParameters.map(\.1)
        gradientHolders = all.filter { seen.insert(ObjectIdentifier($0)).inserted }
    }

    /// HF AdamW over `parameters` in the two standard groups (no decay on biases and LayerNorm weights).
    static func modelOptimizer(_ parameters: [(String, Variable)], _ c: TrainerConfiguration) -> AdamW {
        AdamW(groups: ParameterGroup.standard(parameters, learningRate: c.learningRate, weightDecay: c.weightDecay),
              beta1: c.adamBeta1, beta2: c.adamBeta2, eps: c.adamEpsilon)
    }

    static let rngDescription = "shuffle: epoch e uses Xoshiro256(seed &+ e) (Batcher); dropout: step k uses "
        + "Xoshiro256(Trainer.dropoutSeed(seed, step: k)); no generator state is carried between steps"

    /// The dropout seed of the 0-based step `step`: a SplitMix64 hash of the run's seed plus the step, so that it
    /// never meets the shuffling seeds (seed + epoch).
    public static func dropoutSeed(_ seed: UInt64, step: Int) -> UInt64 {
        var z = seed ^ 0xD1B5_4A32_D192_ED03
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return (z ^ (z >> 31)) &+ UInt64(step)
    }

    /// The optimisers whose state a checkpoint keeps: the model's first, then the objective's.
    var allOptimizers: [(name: String, optimizer: AdamW)] { [("model", optimizer)] + objective.auxiliaryOptimizers }

    // MARK: - Resume

    /// Restores a run from its `checkpoint/` directory: the state, every model parameter, the optimisers' moments and
    /// the objective's tensors. The checkpoint must come from the same configuration, arguments and training data.
    public func resume(from checkpoint: URL) throws {
        TrainingCheckpoint.recover(checkpoint)
        let saved = try TrainingCheckpoint.readState(checkpoint)
        let stateFile = checkpoint.appendingPathComponent(TrainingCheckpoint.stateFile).path
        let changed = saved.configuration.differences(from: configuration)
        guard changed.isEmpty else {
            throw TrainerError("cannot resume: \(stateFile) was written with other settings (the run's vs now): "
                               + changed.joined(separator: "; "))
        }
        let keys = Set(saved.arguments.keys).union(arguments.keys).sorted()
        let differing = keys.filter { saved.arguments[$0] != arguments[$0] }
            .map { "\($0): \(saved.arguments[$0] ?? "none") vs \(arguments[$0] ?? "none")" }
        guard differing.isEmpty else {
            throw TrainerError("cannot resume: \(stateFile) belongs to another run (the run's vs now): "
                               + differing.joined(separator: "; "))
        }
        guard saved.trainExamples == data.exampleCount, saved.stepsPerEpoch == stepsPerEpoch else {
            throw TrainerError("cannot resume: the training data changed (\(stateFile) has \(saved.trainExamples) examples in "
                               + "\(saved.stepsPerEpoch) batches per epoch; now \(data.exampleCount) in \(stepsPerEpoch))")
        }

        if let output, let diverged = output.divergence(after: saved.globalStep) {
            throw TrainerError("cannot resume: the run stopped at step \(diverged.step) because \(diverged.reason), after "
                + "its last checkpoint (\(checkpoint.path), step \(saved.globalStep)). "
                + Self.divergenceAdvice(step: diverged.step, learningRate: saved.configuration.learningRate,
                                        option: learningRateOption))
        }

        // The objective before the optimisers: which optimisers it has may depend on its restored state.
        try TrainingCheckpoint.load(into: model, objective: objective, from: checkpoint)
        let optimizerURL = checkpoint.appendingPathComponent(TrainingCheckpoint.optimizerFile)
        let moments = try SafetensorsFile(contentsOf: optimizerURL)
        for (name, opt) in allOptimizers {
            let prefix = name + "/"
            var s: [String: Tensor] = [:]
            for key in moments.names where key.hasPrefix(prefix) { s[String(key.dropFirst(prefix.count))] = try moments.tensor(key) }
            do { try opt.load(state: s) } catch { throw TrainerError("\(optimizerURL.path): optimizer '\(name)': \(error)") }
        }
        state = saved
        resumed = true
    }

    // MARK: - The loop

    /// Trains to the end (or until `onStep` throws or a loss or gradient is not finite).
    @discardableResult
    public func train() throws -> TrainingSummary {
        let runStart = Self.now()
        wallClock = (state.wallSeconds ?? 0, runStart)
        defer { wallClock = nil }
        try openLog()
        var counters = RunCounters(epochStart: Self.now(), lastSavedStep: resumed ? state.globalStep : -1)

        if configuration.evaluateAtStart && !resumed && state.globalStep == 0 && evaluator != nil { try evaluate() }
        var epochOrder: (epoch: Int, batches: [[Int]]) = (-1, [])
        while state.globalStep < totalSteps {
            if state.globalStep == configuration.modelOptimizerRestartStep {
                optimizer = Self.modelOptimizer(trainableParameters, configuration)
                log?.append([("event", "optimizer_restart"), ("step", state.globalStep + 1)])
            }
            if epochOrder.epoch != state.epoch { epochOrder = (state.epoch, data.order(epoch: state.epoch)) }
            let order = epochOrder.batches
            let taken = try takeStep(batch: order[state.batchInEpoch])
            try record(taken, counters: &counters)
            let epochDone = state.batchInEpoch == order.count
            if epochDone { endEpoch(counters: &counters) }
            try evaluateAndSave(epochDone: epochDone, lastSavedStep: &counters.lastSavedStep)
        }
        if counters.lastSavedStep != state.globalStep && output != nil { try saveCheckpoint() }
        progress?.finish()
        return finishRun(start: runStart)
    }

    /// What one call of `train()` counts besides the state: its own totals (for the speed and the ETA), the sums
    /// of the logging window (emptied at each `train` record), the clock of the epoch in progress, and the step of
    /// the last checkpoint it wrote.
    private struct RunCounters {
        var examples = 0, steps = 0, trainSeconds = 0.0
        var windowLoss = 0.0, windowSteps = 0, windowExamples = 0, windowSeconds = 0.0, windowModelSeconds = 0.0
        var epochStart: Double, epochTrainSeconds = 0.0
        var lastSavedStep: Int
    }

    /// One optimiser step, as `takeStep` returns it.
    private struct TakenStep {
        var loss: Float
        var gradientNorm: Float
        var learningRate: Float
        var examples: Int
        /// Seconds of the whole step, and of its batch, forward and backward passes alone.
        var seconds: Double
        var modelSeconds: Double
    }

    /// Opens `metrics.jsonl` (a resumed run keeps its lines up to the resumed step) and records the start or the
    /// resume.
    private func openLog() throws {
        if let output, parallel?.group.isLead ?? true {
            log = try MetricsLog(url: output.metrics, keepingStepsUpTo: resumed ? state.globalStep : nil)
        }
        if resumed {
            log?.append([("event", "resume"), ("step", state.globalStep), ("epoch", state.epochProgress),
                         ("time", Self.timestamp())])
            progress?.message("resuming at step \(state.globalStep) of \(totalSteps) "
                              + "(epoch \(state.epoch + 1), batch \(state.batchInEpoch) of \(stepsPerEpoch))")
        } else {
            log?.append([("event", "start"), ("step", 0), ("time", Self.timestamp()), ("train_examples", data.exampleCount),
                         ("steps_per_epoch", stepsPerEpoch), ("total_steps", totalSteps),
                         ("configuration", JSON.Raw(encoding: configuration)), ("arguments", JSON.Raw(encoding: arguments))])
        }
    }

    /// Takes the next step on the batch of examples `indices`: the loss with this step's dropout, the backward
    /// pass, clipping and every optimiser's update; then advances the state by one step.
    private func takeStep(batch indices: [Int]) throws -> TakenStep {
        let stepStart = Self.now()
        let step = state.globalStep
        let batch = data.trainingBatch(indices)
        var mode = ForwardMode(training: true, rng: Xoshiro256(seed: Self.dropoutSeed(configuration.seed, step: step)),
                               packsTokens: configuration.packsTokens)
        let lossValue: Float
        if let parallel {
            lossValue = parallelForwardBackward(parallel, batch: batch, mode: &mode, step: step)
            guard lossValue.isFinite else { throw stopped(step: step, reason: "the loss is \(lossValue)") }
        } else {
            let loss = objective.loss(model: model, batch: batch, mode: &mode, step: step)
            lossValue = loss.value.scalar
            guard lossValue.isFinite else { throw stopped(step: step, reason: "the loss is \(lossValue)") }
            loss.backward()
        }
        let backwardDone = Self.now()
        let norm = clipGradientNorm(trainableParameters.map(\.1), maxNorm: configuration.maxGradNorm)
        guard norm.isFinite else {
            clearGradients()
            throw stopped(step: step, reason: "the gradient norm is \(norm) (loss \(lossValue))")
        }
        objective.beforeOptimizerStep(step: step)
        let multiplier = configuration.learningRateMultiplier(step: step, totalSteps: totalSteps)
        for (_, opt) in allOptimizers { opt.step(scheduleMultiplier: multiplier) }
        clearGradients()
        objective.afterOptimizerStep(step: step)
        if let parallel, (step + 1) % parallel.checkEvery == 0 || step + 1 == totalSteps {
            try parallel.checkWeights(model.namedParameters.map { ($0.0, $0.1.value) }
                                        + objective.checkpointTensors.sorted { $0.key < $1.key }, step: step + 1)
        }

        state.globalStep += 1
        state.batchInEpoch += 1
        state.examplesSeen += batch.size
        let seconds = Self.now() - stepStart
        state.trainSeconds += seconds
        return TakenStep(loss: lossValue, gradientNorm: norm, learningRate: configuration.learningRate * multiplier,
                         examples: batch.size, seconds: seconds, modelSeconds: backwardDone - stepStart)
    }

    /// The data-parallel forward and backward pass: this rank's rows of `batch` (dropout drawn as one process
    /// would), its weighted loss part, gradients summed over the ranks into every parameter the optimisers step;
    /// returns the global batch's loss. Also agrees on a stop request, so that every rank stops after the same step.
    private func parallelForwardBackward(_ parallel: DataParallel, batch: TrainingBatch, mode: inout ForwardMode,
                                         step: Int) -> Float {
        let shard = parallel.shard(batch)
        let rows = shard.shard!.rows
        mode.rows = rows
        var loss: Variable?
        if rows.count > 0 {
            loss = objective.loss(model: model, batch: shard, mode: &mode, step: step)
        } else {
            objective.emptyShardStep(model: model, shard: shard.shard!, step: step)
        }
        let local = Double(loss?.value.scalar ?? 0)
        let reduced = parallel.backward(loss, parameters: reducedParameters,
                                        scalars: [local, stopRequestedLocally ? 1 : 0])
        // Gradients that reached parameters outside the optimisers' lists (frozen embeddings) are not reduced.
        for p in gradientHolders where !reducedSet.contains(ObjectIdentifier(p)) { p.grad = nil }
        agreedStop = reduced[1] > 0
        return Float(reduced[0])
    }

    /// Every parameter an optimiser steps (the model optimiser's first), reduced in data-parallel steps.
    private lazy var reducedParameters: [Variable] = {
        var seen = Set<ObjectIdentifier>()
        let all = trainableParameters.map(\.1)
            + objective.auxiliaryOptimizers.flatMap { $0.optimizer.groups.flatMap { $0.parameters.map(\.1) } }
        return all.filter { seen.insert(ObjectIdentifier($0)).inserted }
    }()
    private lazy var reducedSet = Set(reducedParameters.map(ObjectIdentifier.init))
    /// The stop request every rank agreed on at the last data-parallel step.
    private var agreedStop = false
    /// The communication counters at the start of the logging window.
    private var windowCommunication: CommunicationStats?

    /// Counts a taken step, hands it to `onStep`, updates the progress line and, every `loggingSteps` and at the
    /// last step, writes the window's `train` record.
    private func record(_ step: TakenStep, counters c: inout RunCounters) throws {
        c.windowModelSeconds += step.modelSeconds
        c.trainSeconds += step.seconds
        c.epochTrainSeconds += step.seconds
        c.examples += step.examples
        c.windowLoss += Double(step.loss)
        c.windowSteps += 1
        c.windowExamples += step.examples
        c.windowSeconds += step.seconds
        try onStep?(StepRecord(step: state.globalStep, epoch: state.epochProgress, loss: step.loss,
                               gradientNorm: step.gradientNorm, learningRate: step.learningRate))

        c.steps += 1
        let epochs = (totalSteps + stepsPerEpoch - 1) / stepsPerEpoch
        let examplesPerSecond = Double(c.examples) / max(c.trainSeconds, 1e-9)
        let eta = c.trainSeconds / Double(c.steps) * Double(totalSteps - state.globalStep)
        progress?.update(ProgressSnapshot(epoch: state.epoch + 1, epochs: epochs, step: state.globalStep,
                                          totalSteps: totalSteps, loss: c.windowLoss / Double(c.windowSteps),
                                          learningRate: Double(step.learningRate), examplesPerSecond: examplesPerSecond,
                                          etaSeconds: eta))
        if state.globalStep % configuration.loggingSteps == 0 || state.globalStep == totalSteps {
            logWindow(step, counters: &c)
        }
    }

    /// Writes the `train` record of the logging window that ends with `step`, and empties the window.
    private func logWindow(_ step: TakenStep, counters c: inout RunCounters) {
        var record: [(String, Any?)] = [
            ("event", "train"), ("step", state.globalStep), ("epoch", state.epochProgress),
            ("loss", c.windowLoss / Double(c.windowSteps)), ("learning_rate", Double(step.learningRate)),
            ("grad_norm", Double(step.gradientNorm)),
            ("examples_per_second", Double(c.windowExamples) / max(c.windowSeconds, 1e-9)),
            // Where a step's time goes: batch + forward + backward, and clipping + optimiser steps.
            ("step_seconds", c.windowSeconds / Double(c.windowSteps)),
            ("model_seconds", c.windowModelSeconds / Double(c.windowSteps)),
        ]
        for (k, v) in objective.logScalars.sorted(by: { $0.key < $1.key }) { record.append((k, v)) }
        if let parallel {
            // The window's gradient communication per step: bytes each rank sent into all-reduces, seconds from the
            // first bucket's start to the last one's end, and the part of it after the backward pass (not hidden).
            let now = parallel.stats, before = windowCommunication ?? CommunicationStats()
            let steps = Double(max(now.steps - before.steps, 1))
            record += [("ranks", parallel.group.size), ("allreduce_buckets", now.buckets),
                       ("allreduce_bytes_per_step", Double(now.bytes - before.bytes) / steps),
                       ("allreduce_seconds", (now.reduceSeconds - before.reduceSeconds) / steps),
                       ("exposed_communication_seconds", (now.exposedSeconds - before.exposedSeconds) / steps)]
            windowCommunication = now
        }
        log?.append(record)
        c.windowLoss = 0; c.windowSteps = 0; c.windowExamples = 0; c.windowSeconds = 0; c.windowModelSeconds = 0
    }

    /// Records the end of the epoch in progress (its wall and training time) and moves the state to the next one.
    private func endEpoch(counters c: inout RunCounters) {
        let wall = Self.now() - c.epochStart
        log?.append([("event", "epoch"), ("step", state.globalStep), ("epoch", state.epoch + 1),
                     ("seconds", wall), ("train_seconds", c.epochTrainSeconds),
                     ("examples_per_second", Double(data.exampleCount) / max(c.epochTrainSeconds, 1e-9))])
        progress?.message("epoch \(state.epoch + 1) done in \(ProgressReporter.duration(wall)) "
                          + "(training \(ProgressReporter.duration(c.epochTrainSeconds)), "
                          + String(format: "%.1f", Double(data.exampleCount) / max(c.epochTrainSeconds, 1e-9)) + " examples/s)")
        state.epoch += 1
        state.batchInEpoch = 0
        c.epochStart = Self.now()
        c.epochTrainSeconds = 0
    }

    /// After a step: evaluates when due (every `evalSteps`, at an epoch end if asked, at the last step); writes
    /// `checkpoint/` after an evaluation, at an epoch end, at the last step, every `saveSteps` and on a stop
    /// request, which then ends the run.
    private func evaluateAndSave(epochDone: Bool, lastSavedStep: inout Int) throws {
        let last = state.globalStep == totalSteps
        let evalDue = (configuration.evalSteps.map { state.globalStep % $0 == 0 } ?? false)
            || (epochDone && configuration.evaluateEachEpoch) || last
        if evalDue && evaluator != nil && state.lastEvaluationStep != state.globalStep { try evaluate() }
        let saveDue = configuration.saveSteps.map { state.globalStep % $0 == 0 } ?? false
        let stop = stopRequested
        if evalDue || epochDone || last || saveDue || stop {
            try saveCheckpoint()
            lastSavedStep = state.globalStep
        }
        if stop {
            log?.append([("event", "stopped"), ("step", state.globalStep), ("reason", "stop requested"),
                         ("time", Self.timestamp())])
            progress?.finish()
            let saved = output.map { "; \($0.checkpoint.path) holds this step: continue with --resume" } ?? ""
            let message = "stopped on request after step \(state.globalStep) of \(totalSteps)\(saved)"
            if let parallel {
                parallel.group.barrier()  // rank 0 has written the checkpoint
                throw ClusterError(message)
            }
            throw TrainerError(message)
        }
    }

    /// The summary of the finished run, also recorded as the `end` event and the last progress message.
    private func finishRun(start runStart: Double) -> TrainingSummary {
        let summary = TrainingSummary(
            steps: state.globalStep, epochs: state.epochProgress, bestMetricName: state.bestMetricName,
            bestMetric: state.bestMetric, bestStep: state.bestStep, lastEvaluation: lastEvaluation,
            seconds: Self.now() - runStart, wallSeconds: updatedWallSeconds(), trainSeconds: state.trainSeconds,
            evaluationSeconds: state.evaluationSeconds,
            examplesPerSecond: Double(state.examplesSeen) / max(state.trainSeconds, 1e-9))
        log?.append([("event", "end"), ("step", state.globalStep), ("epoch", state.epochProgress),
                     ("best_metric_name", summary.bestMetricName), ("best_metric", summary.bestMetric),
                     ("best_step", summary.bestStep), ("train_seconds", summary.trainSeconds),
                     ("evaluation_seconds", summary.evaluationSeconds), ("examples_per_second", summary.examplesPerSecond),
                     ("time", Self.timestamp())])
        progress?.message(summary.description)
        log = nil
        return summary
    }

    /// The result of the latest evaluation in this process.
    public private(set) var lastEvaluation: EvaluationResult?

    /// Evaluates now; a new best (by the primary metric, among evaluations eligible for it) is written to `best/`.
    @discardableResult
    public func evaluate() throws -> EvaluationResult? {
        guard let evaluator else { return nil }
        let start = Self.now()
        let result = try evaluator.evaluate(model: model)
        let seconds = Self.now() - start
        state.evaluationSeconds += seconds
        state.lastEvaluationStep = state.globalStep
        lastEvaluation = result
        let isBest = result.improves(on: state.bestMetric)
        if isBest {
            state.bestMetric = result.primary
            state.bestMetricName = result.primaryName
            state.bestStep = state.globalStep
            if let output {
                _ = updatedWallSeconds()
                try TrainingCheckpoint.write(to: output.best, model: model, export: export, state: state)
            }
        }
        let metrics: [(String, Any?)] = result.metrics.map { ($0.name, $0.value) }
        log?.append([("event", "eval"), ("step", state.globalStep), ("epoch", state.epochProgress), ("metrics", metrics),
                     ("primary", result.primaryName), ("value", result.primary), ("loss", result.loss),
                     ("examples", result.examples), ("best", isBest), ("seconds", seconds)])
        progress?.message("eval at step \(state.globalStep) (epoch \(String(format: "%.2f", state.epochProgress))): "
                          + result.summary + (result.loss.map { String(format: ", loss %.4f", $0) } ?? "")
                          + (isBest ? "  (best so far)" : "") + "  [\(ProgressReporter.duration(seconds))]")
        return result
    }

    /// Writes `checkpoint/` with the current state (nothing without an output directory).
    public func saveCheckpoint() throws {
        guard let output, parallel?.group.isLead ?? true else { return }
        _ = updatedWallSeconds()
        try TrainingCheckpoint.write(to: output.checkpoint, model: model, export: export, state: state,
                                     optimizers: allOptimizers, objectiveTensors: objective.checkpointTensors)
    }

    /// Sets `state.wallSeconds` to the wall time in `train()` so far, over every resume, and returns it.
    private func updatedWallSeconds() -> Double {
        if let w = wallClock { state.wallSeconds = w.base + Self.now() - w.start }
        return state.wallSeconds ?? 0
    }

    private let stopLock = NSLock()
    private var stopFlag = false
    private var stopRequestedLocally: Bool { stopLock.lock(); defer { stopLock.unlock() }; return stopFlag }
    /// In a data-parallel run, the request every rank agreed on at the last step (any rank's request stops all).
    private var stopRequested: Bool { parallel == nil ? stopRequestedLocally : agreedStop }

    /// Asks the run to stop after the step in progress, writing checkpoint/ first; `train()` then throws. Safe to
    /// call from another thread (a signal handler's queue).
    public func requestStop() {
        stopLock.lock()
        stopFlag = true
        stopLock.unlock()
    }

    private func clearGradients() {
        for p in gradientHolders { p.grad = nil }
        for (_, opt) in objective.auxiliaryOptimizers { for g in opt.groups { for (_, p) in g.parameters { p.grad = nil } } }
    }

    private func stopped(step: Int, reason: String) -> Error {
        clearGradients()
        let where_ = "step \(step + 1) (epoch \(state.epoch + 1), batch \(state.batchInEpoch + 1) of \(stepsPerEpoch))"
        var message = "\(where_): \(reason); training stopped before applying this update"
        if let output, let saved = try? TrainingCheckpoint.readState(output.checkpoint) {
            message += ". The last checkpoint is \(output.checkpoint.path) (step \(saved.globalStep))"
        }
        if let best = state.bestStep, let output { message += "; the best model is \(output.best.path) (step \(best))" }
        message += ". " + Self.divergenceAdvice(step: step + 1, learningRate: configuration.learningRate,
                                                 option: learningRateOption)
        // `diverged` marks the stop for `resume(from:)`, which then refuses to repeat it.
        log?.append([("event", "stopped"), ("step", step + 1), ("reason", reason), ("diverged", true),
                     ("time", Self.timestamp())])
        progress?.finish()
        // In a data-parallel run every rank sees the same reduced loss and gradient norm, so stops alike.
        return parallel == nil ? TrainerError(message) : ClusterError(message)
    }

    /// Why resuming a diverged run cannot help, and what to do instead.
    static func divergenceAdvice(step: Int, learningRate: Float, option: String) -> String {
        "Training is deterministic (same data order, dropout and updates), so resuming with the same settings "
            + "would stop at step \(step) again: start over (--force) with a lower \(option) (this run's is "
            + "\(learningRate))"
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    static func timestamp() -> String {
        let f = ISO8601DateFormatter()
        return f.string(from: Date())
    }
}

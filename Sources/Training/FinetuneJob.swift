import BERT
import Foundation
import Tasks

/// `cofi finetune` as a library call: everything that can fail on the user's input (model, tokenizer, task,
/// output directory) is checked in `init`, before the output directory is touched; `run()` trains.
public final class FinetuneJob: @unchecked Sendable {
    public let output: TrainingOutput
    public let trainer: Trainer
    private let modelDirectory: URL
    private let prepared: PreparedTask
    private let configuration: TrainerConfiguration
    private let lead: Bool
    /// The command that started the run, shell-quoted, for the model card of best/ (nil: not shown).
    public var command: String?
    /// Measures a model directory's latency in ms for best/'s card (`cofi finetune` passes Runtime's
    /// `ModelBenchmark.latency`), and the conditions it measures under; nil: the card shows no latency.
    public var latencyMeter: ((URL) throws -> Double)?
    public var latencyConditions: ModelCard.LatencyConditions?

    /// Prepares fine-tuning the model in `model` on `task` into `out`; `mode` says what to do with a run already
    /// there. Fetches the default model when `model` is the default asset and it is missing.
    ///
    /// With `parallel` (one of several ranks under mpirun), every rank prepares the same job and they agree before
    /// going on: a rank that fails (a missing file on its host) makes every rank throw the agreed `ClusterError`
    /// naming it; then the ranks check that their arguments, training data and model weights are identical. Rank 0
    /// alone prepares the output directory, writes and reports; on `--resume` it reads the checkpoint and sends it
    /// to the other ranks.
    public init(model: URL, task: TaskSelection, configuration: TrainerConfiguration, out: URL,
                mode: TrainingOutput.Mode, progress: ProgressReporter?, parallel: DataParallel? = nil) throws {
        let lead = parallel?.group.isLead ?? true
        let group = parallel?.group
        let (prepared, bert, arguments) = try agreeing(group) { () throws -> (PreparedTask, BertModel, [String: String]) in
            try configuration.validate()
            if lead {
                try AssetsDirectory.fetchIfDefault(model) { FileHandle.standardError.write(Data("fetch: \($0)\n".utf8)) }
            }
            let tokenizer = try WordPieceTokenizer.load(directory: model)
            let prepared = try task.prepareTraining(tokenizer: tokenizer, tokenizerDirectory: model,
                                                    batchSize: configuration.batchSize, seed: configuration.seed)
            let bert = try BertModel.load(directory: model, task: prepared.head, seed: configuration.seed)
            try prepared.checkLength(bert)
            var arguments = prepared.arguments
            arguments["model"] = model.path
            return (prepared, bert, arguments)
        }
        if let parallel {
            try parallel.checkSameRun(arguments: arguments, settings: String(describing: configuration),
                                      data: prepared.data,
                                      models: [("the model (\(model.appendingPathComponent("model.safetensors").path))",
                                                bert.namedParameters)])
            parallel.distribute(prepared.evaluator)
        }
        output = try agreeing(group) { lead ? try TrainingOutput.prepare(out, mode: mode) : TrainingOutput(directory: out) }
        trainer = try Trainer(model: bert, data: prepared.data, configuration: configuration,
                              evaluator: prepared.evaluator, output: lead ? output : nil, export: prepared.export,
                              arguments: arguments)
        trainer.parallel = parallel
        trainer.progress = lead ? progress : nil
        if mode == .resume {
            if let parallel {
                // Rank 0 reads and checks the checkpoint, then sends it; the others resume from their copy.
                let trainer = self.trainer, checkpoint = output.checkpoint
                try agreeing(group) { if lead { try trainer.resume(from: checkpoint) } }
                let scratch = try agreeing(group) { lead ? nil : try parallel.scratchDirectory() }
                defer { if let scratch { try? FileManager.default.removeItem(at: scratch) } }
                try parallel.group.mirror(directory: checkpoint, into: scratch)
                try agreeing(group) { if let scratch { try trainer.resume(from: scratch) } }
            } else {
                try trainer.resume(from: output.checkpoint)
            }
        }
        modelDirectory = model
        self.prepared = prepared
        self.configuration = configuration
        self.lead = lead
    }

    /// Trains to the end (or until `requestStop`), writing checkpoint/, best/ and metrics.jsonl; at the end, the
    /// model card of best/ (`ModelCard`: written once training is over, since best/ is replaced at every new best).
    public func run() throws -> TrainingSummary {
        let c = configuration
        let warmup = c.warmup(totalSteps: trainer.totalSteps)
        trainer.progress?.message(
            "fine-tuning \(modelDirectory.path) on \(prepared.taskName): \(prepared.description), metric \(prepared.evaluator.primaryName)\n"
                + "\(trainer.totalSteps) steps (\(trainer.stepsPerEpoch) per epoch, batch \(c.batchSize)), lr \(c.learningRate) "
                + "\(c.schedule.rawValue) with \(warmup) warm-up steps, weight decay \(c.weightDecay), max length \(prepared.maxLength), "
                + "seed \(c.seed)\noutput: \(output.directory.path)")
        let summary = try trainer.train()
        if lead { writeCard(summary) }
        return summary
    }

    /// Writes best/README.md with the best evaluation's metric and, with a `latencyMeter`, best/'s measured latency.
    /// One that cannot be written (or measured) is only a warning.
    private func writeCard(_ summary: TrainingSummary) {
        let best = output.best
        guard FileManager.default.fileExists(atPath: best.appendingPathComponent("config.json").path) else { return }
        do {
            var card = try ModelCard(directory: best)
            card.origin = .finetune
            card.baseModel = modelDirectory.path
            card.dataset = prepared.taskName
            card.evalOptions = ModelCard.evalOptions(runArguments: prepared.arguments)
            card.metricName = summary.bestMetricName ?? prepared.evaluator.primaryName
            card.metric = summary.bestMetric
            card.command = command
            if let meter = latencyMeter, let conditions = latencyConditions {
                do {
                    card.latencyMs = try meter(best)
                    card.latencyConditions = conditions
                } catch {
                    trainer.progress?.message("warning: the latency of \(best.path) could not be measured for its card: \(error)")
                }
            }
            try card.write()
        } catch {
            trainer.progress?.message("warning: the model card of \(best.path) could not be written: \(error)")
        }
    }

    /// Finishes the running step, writes checkpoint/ and stops.
    public func requestStop() { trainer.requestStop() }
}

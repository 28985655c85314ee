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

    /// Prepares fine-tuning the model in `model` on `task` into `out`; `mode` says what to do with a run already
    /// there. Fetches the default model when `model` is the default asset and it is missing.
    public init(model: URL, task: TaskSelection, configuration: TrainerConfiguration, out: URL,
                mode: TrainingOutput.Mode, progress: ProgressReporter?) throws {
        try configuration.validate()
        try AssetsDirectory.fetchIfDefault(model) { FileHandle.standardError.write(Data("fetch: \($0)\n".utf8)) }
        let tokenizer = try WordPieceTokenizer.load(directory: model)
        let prepared = try task.prepareTraining(tokenizer: tokenizer, tokenizerDirectory: model,
                                                batchSize: configuration.batchSize, seed: configuration.seed)
        let bert = try BertModel.load(directory: model, task: prepared.head, seed: configuration.seed)
        try prepared.checkLength(bert)
        var arguments = prepared.arguments
        arguments["model"] = model.path

        output = try TrainingOutput.prepare(out, mode: mode)
        trainer = try Trainer(model: bert, data: prepared.data, configuration: configuration,
                              evaluator: prepared.evaluator, output: output, export: prepared.export,
                              arguments: arguments)
        trainer.progress = progress
        if mode == .resume { try trainer.resume(from: output.checkpoint) }
        modelDirectory = model
        self.prepared = prepared
        self.configuration = configuration
    }

    /// Trains to the end (or until `requestStop`), writing checkpoint/, best/ and metrics.jsonl.
    public func run() throws -> TrainingSummary {
        let c = configuration
        let warmup = c.warmup(totalSteps: trainer.totalSteps)
        trainer.progress?.message(
            "fine-tuning \(modelDirectory.path) on \(prepared.taskName): \(prepared.description), metric \(prepared.evaluator.primaryName)\n"
                + "\(trainer.totalSteps) steps (\(trainer.stepsPerEpoch) per epoch, batch \(c.batchSize)), lr \(c.learningRate) "
                + "\(c.schedule.rawValue) with \(warmup) warm-up steps, weight decay \(c.weightDecay), max length \(prepared.maxLength), "
                + "seed \(c.seed)\noutput: \(output.directory.path)")
        return try trainer.train()
    }

    /// Finishes the running step, writes checkpoint/ and stops.
    public func requestStop() { trainer.requestStop() }
}

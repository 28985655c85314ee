import ArgumentParser
import BERT
import Formats
import Foundation
import Tasks
import Training

/// `cofi eval`: the task metric(s) of a classification, regression or SQuAD checkpoint on a dev set.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a fine-tuned checkpoint on a task's dev set and print its metric(s).",
        discussion: """
            MODEL holds config.json, model.safetensors (with a classification, regression or span head) and the \
            tokenizer. \
            The data is --task NAME [--data DIR] (as for finetune) or your own --dev FILE; a file's labels are read \
            with the model's id2label (from config.json), so they must be among the labels it was trained on.
            --max-length (and SQuAD's --doc-stride) default to what the checkpoint was trained with (its \
            trainer_state.json), else 128 (SQuAD: 384 and 128).
            """)

    @Option(help: "Model directory (a finetune output's best/ or checkpoint/, or any Hugging Face BERT classifier).")
    var model: String

    @OptionGroup var taskOptions: TaskOptions

    @Option(help: "Examples per batch.")
    var batchSize: Int = 32

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Flag(help: "Load a model whose weights hold NaN or infinities (refused by default), to look into it; a metric or loss that comes out NaN still fails.")
    var allowNonFinite = false

    func validate() throws {
        try taskOptions.validate(training: false)
        guard batchSize > 0 else { throw ValidationError("--batch-size is \(batchSize); expected a positive number") }
    }

    func run() throws {
        do { try evaluate() } catch let e as UserError { throw e } catch { throw UserError(description: "\(error)") }
    }

    private func evaluate() throws {
        let modelDir = absoluteURL(model)
        let bert = try BertModel.load(directory: modelDir, options: ModelLoadOptions(allowNonFiniteWeights: allowNonFinite))
        let tokenizer = try WordPieceTokenizer.load(directory: modelDir)
        let trained = try? TrainingCheckpoint.readState(modelDir)
        let prepared = try taskOptions.selection(evalBatchSize: batchSize)
            .prepareEvaluation(model: bert, tokenizer: tokenizer, trained: trained?.arguments, modelPath: modelDir.path)
        let start = Date()
        let result = try prepared.evaluator.evaluate(model: bert)
        let seconds = Date().timeIntervalSince(start)
        // A metric or loss that is not a number is no score: fail, saying which and why.
        let values = result.metrics.map { ($0.name, $0.value) } + (result.loss.map { [("loss", $0)] } ?? [])
        if values.contains(where: { !$0.1.isFinite }) {
            let listed = values.map { "\($0.0) \(String(format: "%.4f", $0.1))" }.joined(separator: ", ")
            let why = result.loss.map { !$0.isFinite } ?? true
                ? "the model's outputs are not finite numbers (its weights may be broken)"
                : "undefined for these predictions (a correlation of constant predictions, or fewer than two examples)"
            throw UserError(description: "\(modelDir.path): the evaluation on \(result.examples) examples of "
                + "\(prepared.taskName) is not a number: \(listed) — \(why)")
        }
        if json {
            let metrics: [(String, Any?)] = result.metrics.map { ($0.name, $0.value) }
            print(JSON.object([("model", modelDir.path), ("task", prepared.taskName), ("examples", result.examples),
                                   ("max_length", prepared.maxLength), ("metrics", metrics), ("primary", result.primaryName),
                                   ("value", result.primary), ("loss", result.loss), ("seconds", seconds)]))
        } else {
            print("\(prepared.taskName) dev, \(result.examples) examples, max length \(prepared.maxLength): \(result.summary)"
                  + (result.loss.map { String(format: " (loss %.4f)", $0) } ?? ""))
        }
    }
}

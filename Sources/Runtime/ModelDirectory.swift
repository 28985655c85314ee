import BERT
import Foundation
import Tasks

/// Opening a user's model directory for prediction (`cofi predict`, `cofi bench`, `cofi serve`), with errors that
/// say what is missing and which cofi command makes it.
public enum ModelDirectory {
    public static let expected = "expected a model directory of cofi finetune (OUT/best) or cofi prune (OUT/final): "
        + "config.json, model.safetensors with a task head, and the tokenizer (vocab.txt or tokenizer.json)"

    /// Fails unless `directory` is a directory holding config.json and model.safetensors; reads nothing else.
    public static func check(_ directory: URL) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw PredictorError("\(directory.path): no such directory; \(expected)")
        }
        for file in ["config.json", "model.safetensors"]
        where !FileManager.default.fileExists(atPath: directory.appendingPathComponent(file).path) {
            throw PredictorError("\(directory.path): no \(file) — not a model directory from cofi; \(expected)")
        }
    }

    /// The model (with its head, as the checkpoint has it), validated by `BertModel.load`, and its tokenizer.
    public static func load(_ directory: URL, options: ModelLoadOptions = ModelLoadOptions()) throws
        -> (BertModel, WordPieceTokenizer) {
        try check(directory)
        let model = try BertModel.load(directory: directory, options: options)
        let tokenizer = try WordPieceTokenizer.load(directory: directory)
        return (model, tokenizer)
    }

    /// The model and tokenizer in `directory`, which must have a task head; `purpose` ends the error's sentence
    /// ("fine-tune it first: …").
    public static func loadWithHead(_ directory: URL, options: ModelLoadOptions = ModelLoadOptions()) throws
        -> (BertModel, WordPieceTokenizer) {
        let (model, tokenizer) = try load(directory, options: options)
        guard model.task != nil else {
            throw PredictorError("\(directory.path): the model has no task head (no classifier or qa_outputs "
                                 + "weights in model.safetensors) — a bare encoder such as a sentence-embedding model; "
                                 + "fine-tune it first: cofi finetune writes OUT/best, cofi prune writes OUT/final")
        }
        return (model, tokenizer)
    }

    /// A predictor for the model in `directory`: its head must be there; classification labels are config.json's
    /// id2label names (as `cofi eval` reads them).
    public static func predictor(_ directory: URL, options: PredictorOptions, threads: Int?,
                                 loadOptions: ModelLoadOptions = ModelLoadOptions()) throws -> Predictor {
        let (model, tokenizer) = try loadWithHead(directory, options: loadOptions)
        do {
            return try Predictor(model: model, tokenizer: tokenizer, labels: model.config.labelNames,
                                 options: options, threads: threads)
        } catch let e as PredictorError {
            throw PredictorError("\(directory.path): \(e.description)")
        }
    }

    /// How `cofi bench` and `cofi serve` name a model (`BertModel.displayName(of:)`: `runs/prune95/final` → `prune95/final`).
    public static func displayName(_ url: URL) -> String { BertModel.displayName(of: url) }
}

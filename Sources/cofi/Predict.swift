import Tasks
import ArgumentParser
import BERT
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Runtime

/// `cofi predict`: one JSON line per input record, streamed — each batch of lines is answered as soon as it is read.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict labels, scores or answer spans for texts from a file or stdin, one JSON line per input.",
        discussion: """
            MODEL holds config.json, model.safetensors with a task head (a classifier or a span head) and the \
            tokenizer: a cofi finetune output's best/ or a cofi prune output's final/.

            Input (--input FILE, else stdin), one record per line:
              text   one text per line; with --pair-separator SEP, a line holding SEP is the pair (before, after)
              tsv    text, or text<TAB>text_pair
              jsonl  {"text": …}, {"text": …, "text_pair": …} or {"question": …, "context": …}; an "id" (string or \
            number) is echoed back; other keys are ignored
            --format defaults by extension (.jsonl/.json: jsonl, .tsv: tsv, else text; stdin: text). For a \
            question-answering model a text-format pair is the question and its context.

            Output, one JSON line per input line in input order (keys sorted):
              classification  {"label": "positive", "probabilities": {"negative": 0.1, "positive": 0.9}}
              regression      {"score": 3.2}
              span            {"answer": "…", "start": 12, "end": 19, "score": 0.93}  (start/end: the answer's \
            characters [start, end) in the context, in Unicode scalars; score: its probability among the n-best)
            plus "truncated": true when the input was longer than --max-length and was cut, and "id" when given. A \
            line that cannot be predicted — an empty line, invalid UTF-8, malformed JSON, a record of the wrong kind \
            for the model — gets {"error": "line N: …"} and the others go on; --skip-empty skips empty lines instead \
            (then there is no output line for them). The exit status is 0 unless the model or the input cannot be \
            opened at all.

            Lines are read and answered --batch-size at a time (fewer when no more input is waiting), and stdout is \
            flushed after each batch, so a pipe gets answers while it is still writing.
            """)

    @Option(help: "Model directory (a cofi finetune output's best/ or a cofi prune output's final/).")
    var model: String

    @Option(help: "Input file (default: stdin).")
    var input: String?

    @Option(help: "Input format: text, tsv or jsonl (default: by the file's extension; stdin: text).")
    var format: InputFormat?

    @Option(help: "text format: the separator of a pair within a line (e.g. ' ||| ').")
    var pairSeparator: String?

    @OptionGroup var encoding: PredictorFlags

    @Option(help: "Input lines read and answered together.")
    var batchSize: Int = 8

    @Flag(help: "Skip empty lines (no output line) instead of answering them with an error.")
    var skipEmpty = false

    @Flag(help: "Texts and pairs: also print the head's raw outputs (\"logits\", one per class), e.g. to compare with ONNX Runtime.")
    var logits = false

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size is \(batchSize); expected a positive number") }
        if let pairSeparator, pairSeparator.isEmpty { throw ValidationError("--pair-separator is empty") }
        if pairSeparator != nil, let format, format != .text {
            throw ValidationError("--pair-separator goes with --format text (tsv pairs are split at the tab)")
        }
    }

    func run() throws {
        do { try predict() } catch let e as UserError { throw e } catch { throw UserError(description: "\(error)") }
    }

    private func predict() throws {
        let predictor = try encoding.predictor(absoluteURL(model), includesLogits: logits)
        let inputURL = input.map(absoluteURL)
        let reader = try LineReader(file: inputURL)
        let parser = RecordParser(format: format ?? inputURL.map(InputFormat.infer) ?? .text,
                                  pairSeparator: pairSeparator, questionAnswering: predictor.task == .span)
        while true {
            let lines = reader.lines(max: batchSize)
            if lines.isEmpty { break }
            let answers = predictor.answer(lines, parser: parser, skipEmpty: skipEmpty)
            if !answers.isEmpty {
                FileHandle.standardOutput.write(Data(answers.map { $0.jsonLine() + "\n" }.joined().utf8))
            }
        }
        if let error = reader.error { throw UserError(description: error) }
    }
}

// MARK: - Predictor flags and model directories

/// The flags of a predictor — max length, doc stride, no-answer, threads, non-finite weights — for every command that predicts
/// (`cofi predict`, `cofi serve`).
struct PredictorFlags: ParsableArguments {
    @Option(help: "Maximum tokens per input, special tokens included; longer inputs are truncated and flagged (default: the model's max positions; question + context: 384).")
    var maxLength: Int?

    @Option(help: "Question + context: context tokens shared by consecutive windows (default: a third of --max-length).")
    var docStride: Int?

    @Flag(help: "Question + context: allow the empty answer (models fine-tuned on SQuAD v2.0).")
    var allowNoAnswer = false

    @Option(help: "Threads of the inference engine (default: all cores).")
    var threads: Int?

    @Flag(help: "Load a model whose weights hold NaN or infinities (refused by default), to look into it.")
    var allowNonFinite = false

    func validate() throws {
        if let maxLength, maxLength < 3 {
            throw ValidationError("--max-length is \(maxLength); expected at least 3 ([CLS], a token, [SEP])")
        }
        if let docStride, docStride < 0 { throw ValidationError("--doc-stride is \(docStride); expected 0 or more") }
        if let threads, threads < 1 { throw ValidationError("--threads is \(threads); expected a positive number") }
    }

    /// The predictor options these flags give, with `batchSize` sequences per engine call.
    func options(batchSize: Int = PredictorOptions().batchSize, includesLogits: Bool = false) -> PredictorOptions {
        var options = PredictorOptions(maxLength: maxLength, docStride: docStride, batchSize: batchSize)
        options.postprocess.version2WithNegative = allowNoAnswer
        options.includesLogits = includesLogits
        return options
    }

    /// A predictor for the model in `directory` (see `ModelDirectory.predictor`).
    func predictor(_ directory: URL, batchSize: Int = PredictorOptions().batchSize, includesLogits: Bool = false) throws -> Predictor {
        try ModelDirectory.predictor(directory, options: options(batchSize: batchSize, includesLogits: includesLogits), threads: threads,
                                     loadOptions: ModelLoadOptions(allowNonFiniteWeights: allowNonFinite))
    }
}

/// `--format` takes an input format by name.
extension InputFormat: ExpressibleByArgument {}

import ArgumentParser
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
        let predictor = try encoding.predictor(absoluteURL(model))
        let inputURL = input.map(absoluteURL)
        let reader = try LineReader(file: inputURL)
        let parser = RecordParser(format: format ?? inputURL.map(InputFormat.infer) ?? .text,
                                  pairSeparator: pairSeparator, questionAnswering: predictor.task == .span)
        while true {
            let lines = reader.lines(max: batchSize)
            if lines.isEmpty { break }
            let answers = answer(lines, parser: parser, predictor: predictor)
            if !answers.isEmpty {
                FileHandle.standardOutput.write(Data(answers.map { $0.jsonLine() + "\n" }.joined().utf8))
            }
        }
        if let error = reader.error { throw UserError(description: error) }
    }

    /// The answers to one batch of lines, in line order (empty lines dropped under --skip-empty).
    func answer(_ lines: [InputLine], parser: RecordParser, predictor: Predictor) -> [Prediction] {
        var records: [Result<ParsedRecord, RecordError>] = []
        for line in lines {
            let r = parser.parse(line)
            if skipEmpty, case .failure(let e) = r, e.isEmptyLine { continue }
            records.append(r)
        }
        var inputs: [PredictorInput] = []
        for case .success(let r) in records { inputs.append(r.input) }
        var predictions = predictor.predict(inputs).makeIterator()
        return records.map { r in
            switch r {
            case .failure(let e): return .failure(e.description, id: e.id)
            case .success(let record):
                var p = predictions.next()!
                p.id = record.id
                if let error = p.error { p.error = "line \(record.line): \(error)" }
                return p
            }
        }
    }
}

// MARK: - Predictor flags and model directories

/// The flags of a predictor — max length, doc stride, no-answer, threads — for every command that predicts
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

    func validate() throws {
        if let maxLength, maxLength < 3 {
            throw ValidationError("--max-length is \(maxLength); expected at least 3 ([CLS], a token, [SEP])")
        }
        if let docStride, docStride < 0 { throw ValidationError("--doc-stride is \(docStride); expected 0 or more") }
        if let threads, threads < 1 { throw ValidationError("--threads is \(threads); expected a positive number") }
    }

    /// The predictor options these flags give, with `batchSize` sequences per engine call.
    func options(batchSize: Int = PredictorOptions().batchSize) -> PredictorOptions {
        var options = PredictorOptions(maxLength: maxLength, docStride: docStride, batchSize: batchSize)
        options.postprocess.version2WithNegative = allowNoAnswer
        return options
    }

    /// A predictor for the model in `directory` (see `ModelDirectory.predictor`).
    func predictor(_ directory: URL, batchSize: Int = PredictorOptions().batchSize) throws -> Predictor {
        try ModelDirectory.predictor(directory, options: options(batchSize: batchSize), threads: threads)
    }
}

/// Opening a user's model directory for prediction (`cofi predict`, `cofi bench`, `cofi serve`), with errors that
/// say what is missing and which cofi command makes it.
enum ModelDirectory {
    static let expected = "expected a model directory of cofi finetune (OUT/best) or cofi prune (OUT/final): "
        + "config.json, model.safetensors with a task head, and the tokenizer (vocab.txt or tokenizer.json)"

    /// The model (with its head, as the checkpoint has it) and its tokenizer.
    static func load(_ directory: URL) throws -> (BertModel, WordPieceTokenizer) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw UserError(description: "\(directory.path): no such directory; \(expected)")
        }
        for file in ["config.json", "model.safetensors"]
        where !FileManager.default.fileExists(atPath: directory.appendingPathComponent(file).path) {
            throw UserError(description: "\(directory.path): no \(file) — not a model directory from cofi; \(expected)")
        }
        let model = try BertModel.load(directory: directory)
        let tokenizer = try WordPieceTokenizer.load(directory: directory)
        return (model, tokenizer)
    }

    /// A predictor for the model in `directory`: its head must be there; classification labels are config.json's
    /// id2label names (as `cofi eval` reads them).
    static func predictor(_ directory: URL, options: PredictorOptions, threads: Int?) throws -> Predictor {
        let (model, tokenizer) = try load(directory)
        guard model.task != nil else {
            throw UserError(description: "\(directory.path): the model has no task head (no classifier or qa_outputs "
                            + "weights in model.safetensors) — a bare encoder such as a sentence-embedding model; "
                            + "fine-tune it first: cofi finetune writes OUT/best, cofi prune writes OUT/final")
        }
        do {
            return try Predictor(model: model, tokenizer: tokenizer, labels: Eval.labelNames(model.config),
                                 options: options, threads: threads)
        } catch let e as PredictorError {
            throw UserError(description: "\(directory.path): \(e.description)")
        }
    }
}

// MARK: - Input records

/// How input lines are read.
enum InputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, tsv, jsonl

    /// By extension: .jsonl / .json → jsonl, .tsv → tsv, anything else → text.
    static func infer(_ url: URL) -> InputFormat {
        switch url.pathExtension.lowercased() {
        case "jsonl", "json", "ndjson": return .jsonl
        case "tsv": return .tsv
        default: return .text
        }
    }
}

/// One raw input line: its 1-based number and its bytes without the line terminator.
struct InputLine {
    let number: Int
    let bytes: ArraySlice<UInt8>
}

/// One parsed record.
struct ParsedRecord {
    let line: Int
    let input: PredictorInput
    let id: PredictionID?
}

/// A line that is not a record: names the line and what was expected; keeps the record's id when it had one.
struct RecordError: Error, CustomStringConvertible {
    let line: Int
    let message: String
    var id: PredictionID? = nil
    var isEmptyLine = false
    var description: String { "line \(line): \(message)" }
}

/// Turns input lines into records by format.
struct RecordParser {
    let format: InputFormat
    let pairSeparator: String?
    /// A span model: text-format pairs are question and context.
    let questionAnswering: Bool

    func parse(_ line: InputLine) -> Result<ParsedRecord, RecordError> {
        func fail(_ message: String, id: PredictionID? = nil) -> Result<ParsedRecord, RecordError> {
            .failure(RecordError(line: line.number, message: message, id: id))
        }
        guard let text = String(bytes: line.bytes, encoding: .utf8) else {
            return fail("not valid UTF-8; expected UTF-8 text")
        }
        if text.unicodeScalars.allSatisfy({ $0.properties.isWhitespace }) {
            return .failure(RecordError(line: line.number, message: "empty line; expected a record", isEmptyLine: true))
        }
        func record(_ input: PredictorInput, id: PredictionID? = nil) -> Result<ParsedRecord, RecordError> {
            if questionAnswering, case .pair(let q, let context) = input, format != .jsonl {
                return .success(ParsedRecord(line: line.number, input: .question(q, context: context), id: id))
            }
            return .success(ParsedRecord(line: line.number, input: input, id: id))
        }
        switch format {
        case .text:
            if let pairSeparator, let r = text.range(of: pairSeparator) {
                return record(.pair(String(text[..<r.lowerBound]), String(text[r.upperBound...])))
            }
            return record(.text(text))
        case .tsv:
            let columns = text.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            switch columns.count {
            case 1: return record(.text(columns[0]))
            case 2: return record(.pair(columns[0], columns[1]))
            default:
                return fail("\(columns.count) tab-separated columns; expected 1 (text) or 2 (text, text_pair)")
            }
        case .jsonl:
            return parseJSON(text, line: line.number).flatMap { record($0.0, id: $0.1) }
        }
    }

    /// A JSON-lines record (`PredictorRecord.decode`, shared with `cofi serve`): `text` (+ `text_pair`) or
    /// `question` + `context`, and an optional `id`.
    private func parseJSON(_ text: String, line: Int) -> Result<(PredictorInput, PredictionID?), RecordError> {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        } catch {
            let detail = (error as NSError).userInfo["NSDebugDescription"] as? String ?? "\(error)"
            return .failure(RecordError(line: line, message: "malformed JSON (\(detail)); expected one JSON object per line"))
        }
        return PredictorRecord.decode(jsonObject: object)
            .map { ($0.input, $0.id) }
            .mapError { RecordError(line: line, message: $0.message, id: $0.id) }
    }
}

// MARK: - Streaming line reader

/// Reads lines from a file descriptor with its own buffer, so that it can tell whether another line is waiting
/// without blocking (`lines(max:)` takes what is there, and blocks only for the first line of a batch).
/// Lines end at "\n"; a "\r" before it is dropped; the last line need not end with "\n".
final class LineReader {
    private let fd: Int32
    private let ownsFD: Bool
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEnd = false
    private var lineNumber = 0
    /// A read error, if one stopped the input.
    private(set) var error: String?

    /// Reads `file`, or stdin when nil.
    init(file: URL?) throws {
        guard let file else {
            fd = 0
            ownsFD = false
            return
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw UserError(description: "\(file.path): no such file (expected the input records, one per line)")
        }
        let opened = open(file.path, O_RDONLY)
        guard opened >= 0 else {
            throw UserError(description: "\(file.path): cannot open the file (\(String(cString: strerror(errno))))")
        }
        fd = opened
        ownsFD = true
    }

    deinit { if ownsFD { close(fd) } }

    /// Up to `max` lines: waits for the first, then takes only lines already available. Empty at the end of input.
    func lines(max: Int) -> [InputLine] {
        var out: [InputLine] = []
        while out.count < max, let line = nextLine(wait: out.isEmpty) { out.append(line) }
        return out
    }

    /// The next line; nil at the end of input, or when `wait` is false and no complete line is available.
    private func nextLine(wait: Bool) -> InputLine? {
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                var end = newline
                if end > start, buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                return take(end: end, next: newline + 1)
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                var end = buffer.count
                if buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                return take(end: end, next: buffer.count)
            }
            if !wait && !readable() { return nil }
            fill()
        }
    }

    private func take(end: Int, next: Int) -> InputLine {
        lineNumber += 1
        let line = InputLine(number: lineNumber, bytes: buffer[start..<end])
        start = next
        return line
    }

    /// Whether a read would return at once.
    private func readable() -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) > 0
    }

    /// Reads what is there (blocking until something is); sets `atEnd` at the end of input or on an error.
    private func fill() {
        if start > 0 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                buffer += chunk[0..<n]
                return
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { error = "cannot read the input: \(String(cString: strerror(errno)))" }
            atEnd = true
            return
        }
    }
}

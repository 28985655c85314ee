import Foundation
import Tasks

/// One record to predict: a text, a text pair, or a question about a context.
public enum PredictorInput: Sendable, Equatable {
    /// A single text (`[CLS] text [SEP]`), for a classification or regression model.
    case text(String)
    /// A text pair (`[CLS] a [SEP] b [SEP]`), for a classification or regression model trained on pairs.
    case pair(String, String)
    /// A question and the context that holds its answer, for a span (question-answering) model.
    case question(String, context: String)
}

/// The caller's id of a record (JSON lines' `"id"`), echoed back unchanged: a string or a number.
public enum PredictionID: Codable, Sendable, Equatable {
    case string(String)
    case integer(Int)
    case number(Double)

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int.self) { self = .integer(i); return }
        if let d = try? c.decode(Double.self) { self = .number(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        throw DecodingError.typeMismatch(PredictionID.self, .init(codingPath: decoder.codingPath,
                                                                  debugDescription: "expected a string or a number"))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .integer(let i): try c.encode(i)
        case .number(let d): try c.encode(d)
        }
    }
}

/// What the model says about one record, as one JSON object (`Prediction.encoder` writes it):
/// - classification: `{"label": "positive", "probabilities": {"negative": 0.1, "positive": 0.9}}`
/// - regression: `{"score": 3.2}` (the head's output as it is)
/// - span: `{"answer": "Denver Broncos", "start": 177, "end": 191, "score": 0.93}` — `start`/`end` are the answer's
///   character span [start, end) in the context, counted in Unicode scalars (Python `str` indices), and `score` is
///   its probability among the n-best answers (softmax of start + end logits, as Hugging Face's post-processing
///   computes it). With no-answer allowed (SQuAD v2.0 models) the empty answer has no `start`/`end`.
/// plus `"logits": [...]` (the head's raw outputs, one per class) when `PredictorOptions.includesLogits` is set
/// (`cofi predict --logits`, to compare with another runtime), `"truncated": true` when the input was longer than the max length and its end was cut off, `"id"` when the
/// record had one, or only `{"error": "…"}` (with the id) when the record could not be predicted.
public struct Prediction: Codable, Sendable, Equatable {
    public var id: PredictionID?
    public var label: String?
    public var probabilities: [String: Float]?
    public var score: Float?
    /// The head's raw outputs for a text or pair (`PredictorOptions.includesLogits`).
    public var logits: [Float]?
    public var answer: String?
    public var start: Int?
    public var end: Int?
    public var truncated: Bool?
    public var error: String?

    public init(id: PredictionID? = nil, label: String? = nil, probabilities: [String: Float]? = nil,
                score: Float? = nil, answer: String? = nil, start: Int? = nil, end: Int? = nil,
                truncated: Bool? = nil, error: String? = nil) {
        self.id = id
        self.label = label
        self.probabilities = probabilities
        self.score = score
        self.answer = answer
        self.start = start
        self.end = end
        self.truncated = truncated
        self.error = error
    }

    /// A record that could not be predicted.
    public static func failure(_ message: String, id: PredictionID? = nil) -> Prediction {
        Prediction(id: id, error: message)
    }

    /// The one JSON writer of predictions (`cofi predict` and `cofi serve` answer byte for byte alike): keys sorted,
    /// slashes unescaped, no whitespace.
    public static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }

    /// The prediction as one line of JSON (no newline). The predictor never makes non-finite numbers (it turns
    /// such outputs into errors); a prediction built with one elsewhere is written as an error naming it.
    public func jsonLine() -> String {
        if let data = try? Self.encoder.encode(self) { return String(decoding: data, as: UTF8.self) }
        let fallback = Prediction.failure("the prediction holds a number JSON cannot write (NaN or infinity)", id: id)
        return String(decoding: try! Self.encoder.encode(fallback), as: UTF8.self)
    }
}

/// How the predictor encodes records.
public struct PredictorOptions: Sendable {
    /// Tokens per sequence, special tokens included; longer texts are truncated (`longest_first` for pairs) and
    /// flagged. nil: the model's max positions for texts, min(384, max positions) for question + context.
    public var maxLength: Int?
    /// Question + context: context tokens shared by consecutive windows of a long context. nil: a third of the
    /// max length (128 at 384, Hugging Face `run_qa.py`'s default).
    public var docStride: Int?
    /// Sequences per engine call (a long context's windows count one each).
    public var batchSize: Int
    /// Question + context: n-best size, longest answer, and whether the empty answer is allowed (SQuAD v2.0).
    public var postprocess: SQuADPostprocessOptions
    /// Texts and pairs: also answer the head's raw outputs (`Prediction.logits`).
    public var includesLogits = false

    public init(maxLength: Int? = nil, docStride: Int? = nil, batchSize: Int = 32,
                postprocess: SQuADPostprocessOptions = SQuADPostprocessOptions()) {
        self.maxLength = maxLength
        self.docStride = docStride
        self.batchSize = batchSize
        self.postprocess = postprocess
    }
}

/// A predictor that cannot be built: names the model and what was expected.
public struct PredictorError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

// MARK: - JSON records

/// One record as JSON — `cofi predict`'s JSON-lines records and `cofi serve`'s request records alike:
/// `{"text": …}`, `{"text": …, "text_pair": …}` or `{"question": …, "context": …}`, with an optional `"id"` (a string
/// or a number) that is echoed back; other keys are ignored. The one JSON reader of records, so that both commands
/// accept the same records and name the same faults.
public struct PredictorRecord: Sendable, Equatable {
    public var input: PredictorInput
    public var id: PredictionID?

    public init(input: PredictorInput, id: PredictionID? = nil) {
        self.input = input
        self.id = id
    }

    /// The record in `object` (a value as `JSONSerialization` returns it), or what is wrong with it — with the
    /// record's id when the id itself was readable, so that the error can be echoed with it.
    public static func decode(jsonObject object: Any) -> Result<PredictorRecord, PredictorRecordError> {
        guard let fields = object as? [String: Any] else {
            return .failure(PredictorRecordError("a JSON \(jsonKind(object)), expected an object such as "
                                                 + "{\"text\": \"…\"} or {\"question\": \"…\", \"context\": \"…\"}"))
        }
        var id: PredictionID? = nil
        if let raw = fields["id"], !(raw is NSNull) {
            guard let parsed = jsonID(raw) else {
                return .failure(PredictorRecordError("\"id\" is a \(jsonKind(raw)); expected a string or a number"))
            }
            id = parsed
        }
        func fail(_ message: String) -> Result<PredictorRecord, PredictorRecordError> {
            .failure(PredictorRecordError(message, id: id))
        }
        var strings: [String: String] = [:]
        for key in ["text", "text_pair", "question", "context"] {
            guard let raw = fields[key], !(raw is NSNull) else { continue }
            guard let s = raw as? String else { return fail("\"\(key)\" is a \(jsonKind(raw)); expected a string") }
            strings[key] = s
        }
        switch (strings["text"], strings["text_pair"], strings["question"], strings["context"]) {
        case (let a?, nil, nil, nil): return .success(PredictorRecord(input: .text(a), id: id))
        case (let a?, let b?, nil, nil): return .success(PredictorRecord(input: .pair(a, b), id: id))
        case (nil, nil, let q?, let c?): return .success(PredictorRecord(input: .question(q, context: c), id: id))
        case (nil, _?, nil, nil): return fail("\"text_pair\" without \"text\"; expected both")
        case (nil, nil, _?, nil): return fail("\"question\" without \"context\"; expected both")
        case (nil, nil, nil, _?): return fail("\"context\" without \"question\"; expected both")
        case (nil, nil, nil, nil):
            return fail("no \"text\" or \"question\" key; expected {\"text\": …}, {\"text\": …, \"text_pair\": …} "
                        + "or {\"question\": …, \"context\": …}")
        default:
            return fail("both \"text\"/\"text_pair\" and \"question\"/\"context\"; expected one kind of record")
        }
    }

    /// A JSON id value: a string or a number (not a boolean); a whole number below 9e15 becomes `.integer`.
    public static func jsonID(_ raw: Any) -> PredictionID? {
        if let s = raw as? String { return .string(s) }
        guard let n = raw as? NSNumber, !isBoolean(n) else { return nil }
        let type = String(cString: n.objCType)
        if type == "d" || type == "f" {
            let d = n.doubleValue
            return d == d.rounded() && abs(d) < 9e15 ? .integer(Int(d)) : .number(d)
        }
        return .integer(n.intValue)
    }

    /// What a JSON value is, for messages: "string", "number", "boolean", "array", "object" or "null".
    public static func jsonKind(_ value: Any) -> String {
        switch value {
        case is String: return "string"
        case let n as NSNumber: return isBoolean(n) ? "boolean" : "number"
        case is [Any]: return "array"
        case is [String: Any]: return "object"
        case is NSNull: return "null"
        default: return "value"
        }
    }

    private static func isBoolean(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }
}

/// A JSON value that is not a record: what is wrong and what was expected, and the record's id when it had a
/// readable one.
public struct PredictorRecordError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String
    public let id: PredictionID?

    public init(_ message: String, id: PredictionID? = nil) {
        self.message = message
        self.id = id
    }

    public var description: String { message }
}

import Foundation

/// How input lines are read.
public enum InputFormat: String, CaseIterable, Sendable {
    case text, tsv, jsonl

    /// By extension: .jsonl / .json → jsonl, .tsv → tsv, anything else → text.
    public static func infer(_ url: URL) -> InputFormat {
        switch url.pathExtension.lowercased() {
        case "jsonl", "json", "ndjson": return .jsonl
        case "tsv": return .tsv
        default: return .text
        }
    }
}

/// One raw input line: its 1-based number and its bytes without the line terminator.
public struct InputLine: Sendable {
    public let number: Int
    public let bytes: ArraySlice<UInt8>

    public init(number: Int, bytes: ArraySlice<UInt8>) {
        self.number = number
        self.bytes = bytes
    }
}

/// One parsed record.
public struct ParsedRecord: Sendable {
    public let line: Int
    public let input: PredictorInput
    public let id: PredictionID?
}

/// A line that is not a record: names the line and what was expected; keeps the record's id when it had one.
public struct RecordError: Error, CustomStringConvertible, Sendable {
    public let line: Int
    public let message: String
    public var id: PredictionID? = nil
    public var isEmptyLine = false
    public var description: String { "line \(line): \(message)" }
}

/// Turns input lines into records by format.
public struct RecordParser: Sendable {
    public let format: InputFormat
    public let pairSeparator: String?
    /// A span model: text-format pairs are question and context.
    public let questionAnswering: Bool

    public init(format: InputFormat, pairSeparator: String? = nil, questionAnswering: Bool = false) {
        self.format = format
        self.pairSeparator = pairSeparator
        self.questionAnswering = questionAnswering
    }

    public func parse(_ line: InputLine) -> Result<ParsedRecord, RecordError> {
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


extension Predictor {
    /// The answers to one batch of input lines, in line order: a line that is not a record gets its error (naming
    /// the line), the others are predicted together; empty lines are dropped when `skipEmpty`.
    public func answer(_ lines: [InputLine], parser: RecordParser, skipEmpty: Bool = false) -> [Prediction] {
        var records: [Result<ParsedRecord, RecordError>] = []
        for line in lines {
            let r = parser.parse(line)
            if skipEmpty, case .failure(let e) = r, e.isEmptyLine { continue }
            records.append(r)
        }
        var inputs: [PredictorInput] = []
        for case .success(let r) in records { inputs.append(r.input) }
        var predictions = predict(inputs).makeIterator()
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

import Foundation
import Formats

/// The layout of a user's data file.
public enum UserFileFormat: String, CaseIterable, Sendable {
    /// Comma-separated with a header line, RFC 4180 quoting.
    case csv
    /// Tab-separated with a header line; quotes literal by default (GLUE's convention, see `UserDataSpec.tsvQuoting`).
    case tsv
    /// One JSON object per line (`.jsonl`, `.ndjson`, and `.json` as Hugging Face's json loader reads it).
    case jsonLines = "jsonl"

    /// The format named by the file's extension: .csv; .tsv, .tab; .jsonl, .jsonlines, .ndjson, .json.
    public static func infer(from url: URL) throws -> UserFileFormat {
        switch url.pathExtension.lowercased() {
        case "csv": return .csv
        case "tsv", "tab": return .tsv
        case "jsonl", "jsonlines", "ndjson", "json": return .jsonLines
        default:
            throw DataError(file: url.path, message: "cannot tell the format from the extension " +
                            "\(DataIO.quoted(url.pathExtension)); expected .csv, .tsv or .jsonl, or give the format")
        }
    }
}

/// Which columns (or JSON keys) of a user's file hold the texts and the label, and what the labels are.
public struct UserDataSpec: Sendable {
    /// Column or key of the first text.
    public var textColumn: String
    /// Column or key of the second text of a pair, if any.
    public var pairColumn: String?
    /// Column or key of the label; nil for unlabeled data (prediction only).
    public var labelColumn: String?
    /// The file layout; nil to infer it from the extension.
    public var format: UserFileFormat?
    /// The label set in index order. Nil to infer it from the file: the distinct labels sorted numerically when
    /// every label is an integer ("2" before "10"), otherwise by Unicode code points — the order Hugging Face's
    /// `run_glue.py` gives (`label_list.sort()`). Labels are matched exactly (no trimming, case-sensitive); a JSON
    /// number label is written as an integer when it is one (`1` and `1.0` are both "1"), and JSON `true`/`false`
    /// as "true"/"false". An inferred set in which two labels differ only by surrounding whitespace ("pos" and
    /// "pos ") is an error naming both lines, where `run_glue.py` would silently train two classes; labels spelled
    /// the same way throughout, spaces and all, are kept as written.
    public var labels: [String]?
    /// Labels are real numbers (surrounding spaces allowed in text files) and the task is a regression.
    public var regression: Bool
    /// Whether quotes in a TSV file are syntax (`.rfc4180`, as pandas writes) or literal (`.none`, GLUE's convention).
    public var tsvQuoting: Quoting
    /// Overrides the metrics: the default is accuracy for classification and Pearson + Spearman (primary: their
    /// mean) for regression.
    public var metrics: MetricSpec?

    public init(textColumn: String = "text", pairColumn: String? = nil, labelColumn: String? = "label",
                format: UserFileFormat? = nil, labels: [String]? = nil, regression: Bool = false,
                tsvQuoting: Quoting = .none, metrics: MetricSpec? = nil) {
        self.textColumn = textColumn
        self.pairColumn = pairColumn
        self.labelColumn = labelColumn
        self.format = format
        self.labels = labels
        self.regression = regression
        self.tsvQuoting = tsvQuoting
        self.metrics = metrics
    }
}

/// Reads the user's own CSV, TSV or JSON-lines files into a `TaskDataset`.
///
/// Text files need a header line naming their columns; other columns are allowed and ignored, but every row must
/// have as many fields as the header. JSON lines need the named keys in every object (other keys are ignored); text
/// values must be strings. Errors name the file, line and column or key.
public enum UserData {
    /// Reads one file.
    public static func read(_ url: URL, spec: UserDataSpec, options: ReadOptions = ReadOptions()) throws -> TaskDataset {
        var spec = spec
        if spec.format == nil { spec.format = try UserFileFormat.infer(from: url) }
        return try parse(DataIO.readBytes(url), name: url.path, spec: spec, options: options)
    }

    /// Reads a training file and, optionally, a dev file with the training file's label set (a dev label missing
    /// from training is an error).
    public static func read(train: URL, dev: URL?, spec: UserDataSpec,
                            options: ReadOptions = ReadOptions()) throws -> (train: TaskDataset, dev: TaskDataset?) {
        let trainSet = try read(train, spec: spec, options: options)
        guard let dev else { return (trainSet, nil) }
        var devSpec = spec
        if !spec.regression { devSpec.labels = trainSet.labelNames }
        return (trainSet, try read(dev, spec: devSpec, options: options))
    }

    /// Parses a whole file's bytes; `name` is used in errors, and gives the format when `spec.format` is nil.
    public static func parse(_ bytes: [UInt8], name: String, spec: UserDataSpec,
                             options: ReadOptions = ReadOptions()) throws -> TaskDataset {
        let format = try spec.format ?? UserFileFormat.infer(from: URL(fileURLWithPath: name))
        var policy = BadRowPolicy(options)
        let rows: [RawRow]
        switch format {
        case .csv: rows = try delimitedRows(bytes, name: name, format: .csv, spec: spec, policy: &policy)
        case .tsv: rows = try delimitedRows(bytes, name: name, format: DelimitedFormat(separator: "\t", quoting: spec.tsvQuoting),
                                            spec: spec, policy: &policy)
        case .jsonLines: rows = try jsonRows(bytes, name: name, spec: spec, policy: &policy)
        }
        if rows.isEmpty && policy.skipped.count == 0 {
            throw DataError(file: name, message: "no examples in the file")
        }

        let kind: LabelKind
        if spec.regression {
            kind = .regression
        } else if let given = spec.labels {
            kind = .classification(names: given)
        } else if spec.labelColumn != nil {
            try checkSurroundingWhitespace(rows, name: name)
            kind = .classification(names: inferLabelSet(rows.compactMap { $0.label?.text }))
        } else {
            kind = .classification(names: [])
        }
        let index = Dictionary(kind.labelNames.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { a, _ in a })

        var examples: [TextExample] = []
        examples.reserveCapacity(rows.count)
        for row in rows {
            var label: Label?
            if let raw = row.label {
                if spec.regression {
                    guard let v = raw.number ?? Double(raw.text.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                        try policy.reject(DataError(file: name, line: row.line, column: row.labelColumn,
                                                    message: "expected a finite number for a regression label, found " +
                                                        DataIO.quoted(raw.text)))
                        continue
                    }
                    label = .regression(v)
                } else {
                    guard let k = index[raw.text] else {
                        try policy.reject(DataError(file: name, line: row.line, column: row.labelColumn,
                                                    message: "label \(DataIO.quoted(raw.text)) is not in the label set; " +
                                                        "expected one of " + kind.labelNames.map(DataIO.quoted).joined(separator: ", ")))
                        continue
                    }
                    label = .classification(k)
                }
            }
            examples.append(TextExample(textA: row.textA, textB: row.textB, label: label,
                                        source: SourceLocation(file: name, line: row.line)))
        }
        let metrics = spec.metrics ?? (spec.regression ? .pearsonSpearman : .accuracy)
        return TaskDataset(name: URL(fileURLWithPath: name).lastPathComponent, examples: examples, kind: kind,
                           metrics: metrics, skipped: policy.skipped)
    }

    /// Distinct labels in a stable order: numeric when all are integers, otherwise by Unicode code points.
    public static func inferLabelSet(_ labels: [String]) -> [String] {
        let distinct = Array(Set(labels))
        let ints = distinct.map { Int($0) }
        if !distinct.isEmpty, ints.allSatisfy({ $0 != nil }) {
            return zip(distinct, ints).sorted {
                $0.1! != $1.1! ? $0.1! < $1.1! : codePoints($0.0).lexicographicallyPrecedes(codePoints($1.0))
            }.map(\.0)
        }
        return distinct.sorted { codePoints($0).lexicographicallyPrecedes(codePoints($1)) }
    }

    private static func codePoints(_ s: String) -> [UInt32] { s.unicodeScalars.map(\.value) }

    /// Fails at the first row whose label differs from an earlier row's only by surrounding whitespace (a file
    /// problem, not a bad row: which spelling is meant cannot be told, so it is never skipped).
    private static func checkSurroundingWhitespace(_ rows: [RawRow], name: String) throws {
        var first: [String: (label: String, line: Int)] = [:]
        for row in rows {
            guard let label = row.label?.text else { continue }
            let key = label.trimmingCharacters(in: .whitespacesAndNewlines)
            guard let seen = first[key] else {
                first[key] = (label, row.line)
                continue
            }
            guard seen.label != label else { continue }
            throw DataError(file: name, line: row.line, column: row.labelColumn,
                            message: "label \(DataIO.quoted(label)) differs from \(DataIO.quoted(seen.label)) (line \(seen.line)) "
                                + "only by surrounding whitespace; they would be trained as two classes — spell the label "
                                + "the same way on every line")
        }
    }

    // MARK: - rows before label resolution

    struct RawLabel {
        /// The label as text ("1", "positive", "true").
        var text: String
        /// The value when the file stored a number (JSON).
        var number: Double?
    }

    struct RawRow {
        var line: Int
        var textA: String
        var textB: String?
        var label: RawLabel?
        var labelColumn: String?
    }

    private static func delimitedRows(_ bytes: [UInt8], name: String, format: DelimitedFormat, spec: UserDataSpec,
                                      policy: inout BadRowPolicy) throws -> [RawRow] {
        let table = try DelimitedFile.parse(bytes, name: name, format: format)
        guard let header = table.records.first else {
            throw DataError(file: name, message: "empty file; expected a header line naming the columns " +
                            ([spec.textColumn, spec.pairColumn, spec.labelColumn].compactMap { $0 }.map(DataIO.quoted)
                                .joined(separator: ", ")))
        }
        let required = [spec.textColumn, spec.pairColumn, spec.labelColumn].compactMap { $0 }
        let columns = try HeaderColumns(header: header, file: name, required: required, context: "the columns asked for")
        let a = columns.position(spec.textColumn)
        let b = spec.pairColumn.map(columns.position)
        let l = spec.labelColumn.map(columns.position)
        var rows: [RawRow] = []
        rows.reserveCapacity(table.records.count)
        for record in table.records.dropFirst() {
            if let error = columns.checkWidth(record) {
                try policy.reject(error)
                continue
            }
            var label: RawLabel?
            if let l {
                let raw = record.fields[l]
                if raw.isEmpty {
                    try policy.reject(DataError(file: name, line: record.line, column: columns.label(l),
                                                message: "empty label"))
                    continue
                }
                label = RawLabel(text: raw, number: nil)
            }
            rows.append(RawRow(line: record.line, textA: record.fields[a], textB: b.map { record.fields[$0] },
                               label: label, labelColumn: l.map(columns.label)))
        }
        return rows
    }

    /// What a JSON-lines value is, for messages: `JSONValue.kind`, with arrays and objects as one kind.
    private static func typeName(_ value: JSONValue) -> String {
        switch value {
        case .array, .object: return "an array or object"
        default: return value.kind
        }
    }

    private static func jsonRows(_ bytes: [UInt8], name: String, spec: UserDataSpec,
                                 policy: inout BadRowPolicy) throws -> [RawRow] {
        var lines: [(line: Int, bytes: ArraySlice<UInt8>)] = []
        var start = (bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF) ? 3 : 0
        var lineNumber = 1
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            var stop = end
            if stop > start && bytes[stop - 1] == UInt8(ascii: "\r") { stop -= 1 }
            lines.append((lineNumber, bytes[start..<stop]))
            lineNumber += 1
            start = end + 1
        }
        func isBlank(_ s: ArraySlice<UInt8>) -> Bool { s.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D } }
        while let last = lines.last, isBlank(last.bytes) { lines.removeLast() }
        guard !lines.isEmpty else { throw DataError(file: name, message: "empty file; expected one JSON object per line") }
        if let first = lines.first?.bytes.first(where: { !isBlank([$0][...]) }), first == UInt8(ascii: "[") {
            throw DataError(file: name, line: lines[0].line,
                            message: "found a JSON array; expected JSON lines (one object per line)")
        }

        let decoder = JSONDecoder()
        var rows: [RawRow] = []
        rows.reserveCapacity(lines.count)
        lineLoop: for (line, raw) in lines {
            if isBlank(raw) {
                try policy.reject(DataError(file: name, line: line, message: "empty line; expected a JSON object"))
                continue
            }
            guard String(validating: raw, as: UTF8.self) != nil else {
                try policy.reject(DataIO.invalidUTF8(Array(raw), file: name, line: line, what: "line"))
                continue
            }
            let object: [String: JSONValue]
            do {
                object = try decoder.decode([String: JSONValue].self, from: Data(raw))
            } catch {
                if let number = outOfRangeNumber(raw) {
                    // Foundation reports a number it cannot hold as a type mismatch ("found number instead").
                    let key = decodingKey(error)
                    let found = "a number out of range (\(number)); JSON numbers must fit a 64-bit float"
                    let message = key == spec.labelColumn ? "expected a label (string or number), found " + found
                        : key == spec.textColumn || key == spec.pairColumn ? "expected a string, found " + found : found
                    try policy.reject(DataError(file: name, line: line, column: key.map(DataIO.quoted), message: message))
                    continue
                }
                try policy.reject(DataError(file: name, line: line, message: "expected a JSON object on this line " +
                                            "(\(jsonProblem(error)))"))
                continue
            }
            func text(_ key: String) throws -> String? {
                switch object[key] {
                case .string(let s): return s
                case nil:
                    try policy.reject(DataError(file: name, line: line, column: DataIO.quoted(key),
                                                message: "missing key; the object has " +
                                                    object.keys.sorted().map(DataIO.quoted).joined(separator: ", ")))
                case let other?:
                    try policy.reject(DataError(file: name, line: line, column: DataIO.quoted(key),
                                                message: "expected a string, found \(typeName(other))"))
                }
                return nil
            }
            guard let a = try text(spec.textColumn) else { continue }
            var b: String?
            if let key = spec.pairColumn {
                guard let value = try text(key) else { continue }
                b = value
            }
            var label: RawLabel?
            if let key = spec.labelColumn {
                let column = DataIO.quoted(key)
                switch object[key] {
                case .string(let s) where !s.isEmpty: label = RawLabel(text: s, number: nil)
                case .integer(let i): label = RawLabel(text: String(i), number: Double(i))
                case .number(let d) where !d.isFinite:
                    try policy.reject(DataError(file: name, line: line, column: column,
                                                message: "expected a label (string or number), found a number out of range (\(d))"))
                    continue lineLoop
                case .number(let d):
                    let integral = d.rounded() == d && abs(d) < 9.007_199_254_740_992e15
                    label = RawLabel(text: integral ? String(Int(d)) : String(d), number: d)
                case .bool(let v): label = RawLabel(text: v ? "true" : "false", number: nil)
                case nil:
                    try policy.reject(DataError(file: name, line: line, column: column, message: "missing key; the object has " +
                                                object.keys.sorted().map(DataIO.quoted).joined(separator: ", ")))
                    continue lineLoop
                case let other?:
                    let found = typeName(other) == "a string" ? "an empty string" : typeName(other)
                    try policy.reject(DataError(file: name, line: line, column: column,
                                                message: "expected a label (string or number), found \(found)"))
                    continue lineLoop
                }
            }
            rows.append(RawRow(line: line, textA: a, textB: b, label: label,
                               labelColumn: spec.labelColumn.map(DataIO.quoted)))
        }
        return rows
    }

    /// The first number literal of a JSON text that is too large for a `Double` (`1e999`, `-1E+400`), if any;
    /// strings are skipped.
    static func outOfRangeNumber(_ bytes: ArraySlice<UInt8>) -> String? {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        let numberBytes = Set("+-.eE0123456789".utf8)
        var i = bytes.startIndex
        var inString = false
        while i < bytes.endIndex {
            let b = bytes[i]
            if inString {
                if b == backslash { i += 2; continue }
                if b == quote { inString = false }
                i += 1
            } else if b == quote {
                inString = true
                i += 1
            } else if b == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) {
                var j = i
                while j < bytes.endIndex, numberBytes.contains(bytes[j]) { j += 1 }
                let token = String(decoding: bytes[i..<j], as: UTF8.self)
                if let d = Double(token), !d.isFinite { return token }
                i = j
            } else {
                i += 1
            }
        }
        return nil
    }

    /// The top-level key a decoding error happened under, if it says.
    private static func decodingKey(_ error: Error) -> String? {
        switch error {
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c), DecodingError.keyNotFound(_, let c),
             DecodingError.dataCorrupted(let c):
            return c.codingPath.first?.stringValue
        default:
            return nil
        }
    }

    private static func jsonProblem(_ error: Error) -> String {
        switch error {
        case DecodingError.typeMismatch(_, let context), DecodingError.dataCorrupted(let context):
            if let underlying = context.underlyingError { return "\(underlying.localizedDescription)" }
            return context.debugDescription
        default:
            return "\(error)"
        }
    }
}

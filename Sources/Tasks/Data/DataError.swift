import Foundation

/// A problem with an input file, located as precisely as the format allows: the file, the 1-based line where the
/// offending record starts, the column (1-based position and, where the file has a header, its name) or a JSON path,
/// and what was expected instead.
///
/// Rendered as `train.tsv:12: column 2 (label): expected one of 0, 1; found "2"`, so that editors and terminals can
/// jump to it.
public struct DataError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file as the caller named it (a path).
    public var file: String
    /// 1-based line where the record starts; nil for problems with the file as a whole (empty, unreadable).
    public var line: Int?
    /// The column: "3" or "3 (gold_label)" for delimited files, "\"label\"" for a JSON-lines key.
    public var column: String?
    /// A JSON path such as `data[0].paragraphs[2].qas[5]`, for JSON documents.
    public var jsonPath: String?
    /// What is wrong and what was expected.
    public var message: String

    public init(file: String, line: Int? = nil, column: String? = nil, jsonPath: String? = nil, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.jsonPath = jsonPath
        self.message = message
    }

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        if let jsonPath { s += ": at \(jsonPath)" }
        if let column { s += ": column \(column)" }
        return s + ": " + message
    }
}

/// How readers treat rows that fail validation.
public struct ReadOptions: Sendable {
    /// When false (the default) the first bad row stops the read with its `DataError`. When true, bad rows are
    /// dropped, counted and the first `reportLimit` reasons kept in `TaskDataset.skipped`. Problems with the file as
    /// a whole (empty file, wrong header, unterminated quote) always throw.
    public var skipBadRows: Bool
    /// How many skip reasons to keep.
    public var reportLimit: Int

    public init(skipBadRows: Bool = false, reportLimit: Int = 5) {
        self.skipBadRows = skipBadRows
        self.reportLimit = reportLimit
    }
}

/// The rows a read dropped under `ReadOptions.skipBadRows`: how many, and the first few reasons.
public struct SkippedRows: Sendable, Equatable, CustomStringConvertible {
    public var count: Int
    public var firstReasons: [DataError]

    public init(count: Int = 0, firstReasons: [DataError] = []) {
        self.count = count
        self.firstReasons = firstReasons
    }

    public var description: String {
        guard count > 0 else { return "no rows skipped" }
        let more = count > firstReasons.count ? "\n  …" : ""
        return "\(count) bad row\(count == 1 ? "" : "s") skipped:\n" +
            firstReasons.map { "  \($0)" }.joined(separator: "\n") + more
    }
}

/// Either throws a row's error or, with `skipBadRows`, records it.
struct BadRowPolicy {
    let options: ReadOptions
    private(set) var skipped = SkippedRows()

    init(_ options: ReadOptions) { self.options = options }

    mutating func reject(_ error: DataError) throws {
        guard options.skipBadRows else { throw error }
        skipped.count += 1
        if skipped.firstReasons.count < options.reportLimit { skipped.firstReasons.append(error) }
    }
}

/// Small helpers shared by the readers (a namespace, so they cannot clash with other files of the module).
enum DataIO {
    /// Quotes a value for an error message, shortened so one bad 10 kB field does not flood the terminal.
    static func quoted(_ s: String) -> String {
        let limit = 60
        let body = s.count > limit ? String(s.prefix(limit)) + "…" : s
        return "\"" + body.replacingOccurrences(of: "\t", with: "\\t").replacingOccurrences(of: "\r", with: "\\r")
            .replacingOccurrences(of: "\n", with: "\\n") + "\""
    }

    /// Reads a whole file, turning the Foundation error into a `DataError` naming it.
    static func readBytes(_ url: URL) throws -> [UInt8] {
        if isDirectory(url) { throw DataError(file: url.path, message: directoryMessage) }
        do {
            return [UInt8](try Data(contentsOf: url))
        } catch {
            throw DataError(file: url.path, message: "cannot read the file (\(error.localizedDescription))")
        }
    }

    /// Whether `url` names a directory (Foundation's read error for one is "NSCocoaErrorDomain error 256").
    static func isDirectory(_ url: URL) -> Bool {
        var directory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &directory) && directory.boolValue
    }

    /// What the readers say of a directory given where a file is expected (after the path).
    static let directoryMessage = "is a directory; expected a file"

    /// Offset of the first byte that does not start a valid UTF-8 scalar, or nil when all of `bytes` is valid.
    static func firstInvalidUTF8Offset(_ bytes: [UInt8]) -> Int? {
        var it = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &it) {
            case .valid(let scalar): offset += scalar.count
            case .error: return offset
            case .emptyInput: return nil
            }
        }
    }

    /// The UTF-8 error for a whole line or field, naming the first bad byte.
    static func invalidUTF8(_ bytes: [UInt8], file: String, line: Int, column: String? = nil, what: String) -> DataError {
        let offset = firstInvalidUTF8Offset(bytes) ?? 0
        let byte = offset < bytes.count ? String(bytes[offset], radix: 16, uppercase: true) : "?"
        return DataError(file: file, line: line, column: column,
                         message: "invalid UTF-8 (byte 0x\(byte) at byte \(offset) of the \(what)); files must be UTF-8")
    }
}

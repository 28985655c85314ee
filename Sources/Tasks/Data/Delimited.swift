import Foundation

/// Whether a double quote is syntax or a literal character.
public enum Quoting: Sendable, Equatable {
    /// Quotes are ordinary characters (Python's `csv.QUOTE_NONE`): GLUE reads its TSVs this way, and its sentences
    /// contain unbalanced quotes, so this is the only correct reading of GLUE files.
    case none
    /// RFC 4180: a field that starts with `"` runs to the matching `"`, may contain separators and line breaks, and
    /// writes a literal quote as `""`. A quote inside an unquoted field is literal (as in Python's csv module).
    case rfc4180
}

/// A separator and a quoting convention.
public struct DelimitedFormat: Sendable, Equatable {
    public var separator: UInt8
    public var quoting: Quoting

    public init(separator: Character, quoting: Quoting) {
        precondition(separator.isASCII && separator != "\"" && separator != "\n" && separator != "\r",
                     "the separator must be an ASCII character other than a quote or a line break")
        self.separator = separator.asciiValue!
        self.quoting = quoting
    }

    /// Comma-separated, RFC 4180 quoting.
    public static let csv = DelimitedFormat(separator: ",", quoting: .rfc4180)
    /// Tab-separated with literal quotes: GLUE's convention.
    public static let glueTSV = DelimitedFormat(separator: "\t", quoting: .none)
    /// Tab-separated with RFC 4180 quoting (what `pandas.to_csv(sep="\t")` writes).
    public static let quotedTSV = DelimitedFormat(separator: "\t", quoting: .rfc4180)
}

/// One record of a delimited file.
public struct DelimitedRecord: Sendable, Equatable {
    /// 1-based line on which the record starts (a quoted field may continue it over several lines).
    public var line: Int
    /// The fields, decoded as UTF-8; empty for a blank line.
    public var fields: [String]
    /// Set when the record could not be decoded (invalid UTF-8, text after a closing quote); `fields` is then empty.
    public var error: DataError?
}

/// A delimited text file split into records.
///
/// - Line ends: `\n`, `\r\n` and a lone `\r` all end a record outside quotes (Python's universal newlines, which
///   is how GLUE's reference readers see them). Inside a quoted field they are kept verbatim.
/// - A UTF-8 byte order mark at the start is dropped.
/// - The last line needs no line end. Blank lines at the end of the file are dropped; a blank line anywhere else is
///   kept as a record with no fields, for the reader to reject.
/// - Invalid UTF-8 in a field is reported for that record (line and column), not for the file.
/// - An unterminated quoted field throws, naming the line where its quote opened: the rest of the file would be
///   swallowed into it, so it cannot be skipped.
public struct DelimitedFile: Sendable {
    /// The file name used in errors.
    public let name: String
    public let records: [DelimitedRecord]

    /// Reads and splits `url`.
    public static func read(_ url: URL, format: DelimitedFormat) throws -> DelimitedFile {
        let bytes = try DataIO.readBytes(url)
        return try parse(bytes, name: url.path, format: format)
    }

    /// Splits `bytes` (a whole file) into records; `name` is used in errors.
    public static func parse(_ bytes: [UInt8], name: String, format: DelimitedFormat) throws -> DelimitedFile {
        let records = try bytes.withUnsafeBufferPointer { try split($0, name: name, format: format) }
        return DelimitedFile(name: name, records: records)
    }

    private static func split(_ b: UnsafeBufferPointer<UInt8>, name: String,
                              format: DelimitedFormat) throws -> [DelimitedRecord] {
        let quote = UInt8(ascii: "\""), cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
        let sep = format.separator, quoting = format.quoting == .rfc4180
        let n = b.count
        var i = (n >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF) ? 3 : 0
        var line = 1
        var records: [DelimitedRecord] = []

        /// Consumes one line end at `i` if there is one.
        func skipLineEnd() -> Bool {
            guard i < n else { return false }
            if b[i] == cr {
                i += 1
                if i < n && b[i] == lf { i += 1 }
                line += 1
                return true
            }
            if b[i] == lf {
                i += 1
                line += 1
                return true
            }
            return false
        }

        while i < n {
            let recordLine = line
            if skipLineEnd() {
                records.append(DelimitedRecord(line: recordLine, fields: [], error: nil))
                continue
            }
            var fields: [String] = []
            var error: DataError?
            fieldLoop: while true {
                let column = fields.count + 1
                var decoded: String?
                var rawField: [UInt8] = []
                if quoting && i < n && b[i] == quote {
                    i += 1
                    var closed = false
                    while i < n {
                        let c = b[i]
                        if c == quote {
                            if i + 1 < n && b[i + 1] == quote {
                                rawField.append(quote)
                                i += 2
                                continue
                            }
                            i += 1
                            closed = true
                            break
                        }
                        if c == cr || c == lf {
                            // Keep the line break verbatim but count it.
                            rawField.append(c)
                            i += 1
                            if c == cr && i < n && b[i] == lf {
                                rawField.append(lf)
                                i += 1
                            }
                            line += 1
                            continue
                        }
                        rawField.append(c)
                        i += 1
                    }
                    guard closed else {
                        throw DataError(file: name, line: recordLine, column: "\(column)",
                                        message: "unterminated quoted field: the quote that opens it is never closed " +
                                            "(a literal quote inside a quoted field is written \"\")")
                    }
                    if i < n && b[i] != sep && b[i] != cr && b[i] != lf, error == nil {
                        error = DataError(file: name, line: recordLine, column: "\(column)",
                                          message: "unexpected character after a closing quote; expected the " +
                                            "separator or the end of the line")
                    }
                    decoded = String(validating: rawField, as: UTF8.self)
                } else {
                    let start = i
                    while i < n, b[i] != sep, b[i] != cr, b[i] != lf { i += 1 }
                    let slice = UnsafeBufferPointer(rebasing: b[start..<i])
                    decoded = String(validating: slice, as: UTF8.self)
                    if decoded == nil { rawField = Array(slice) }
                }
                if let decoded {
                    fields.append(decoded)
                } else if error == nil {
                    error = DataIO.invalidUTF8(rawField, file: name, line: recordLine, column: "\(column)", what: "field")
                }
                if i < n && b[i] == sep {
                    i += 1
                    continue fieldLoop
                }
                // Text after a closing quote: skip to the end of the line.
                while i < n, b[i] != cr, b[i] != lf { i += 1 }
                break
            }
            _ = skipLineEnd()
            records.append(error.map { DelimitedRecord(line: recordLine, fields: [], error: $0) }
                           ?? DelimitedRecord(line: recordLine, fields: fields, error: nil))
        }
        while let last = records.last, last.fields.isEmpty, last.error == nil { records.removeLast() }
        return records
    }
}

/// The columns of a file with a header line, looked up by name.
struct HeaderColumns {
    let file: String
    let names: [String]
    private let index: [String: Int]

    /// Validates that `header` names every column in `required` exactly once.
    /// `expected` (the full official header, if any) is only used to make the error message helpful.
    init(header: DelimitedRecord, file: String, required: [String], expected: [String]? = nil,
         context: String) throws {
        if let error = header.error { throw error }
        self.file = file
        names = header.fields
        var index: [String: Int] = [:]
        var duplicates: Set<String> = []
        for (k, name) in names.enumerated() {
            if index[name] != nil { duplicates.insert(name) } else { index[name] = k }
        }
        self.index = index
        let missing = required.filter { index[$0] == nil }
        let ambiguous = required.filter { duplicates.contains($0) }
        guard missing.isEmpty, ambiguous.isEmpty else {
            let shown = names.map(DataIO.quoted).joined(separator: ", ")
            var message = "the header does not match \(context): "
            if !missing.isEmpty { message += "missing column\(missing.count == 1 ? "" : "s") " +
                missing.map(DataIO.quoted).joined(separator: ", ") }
            if !ambiguous.isEmpty { message += (missing.isEmpty ? "" : "; ") + "column\(ambiguous.count == 1 ? "" : "s") " +
                ambiguous.map(DataIO.quoted).joined(separator: ", ") + " appear more than once" }
            message += "; found [\(shown)]"
            if let expected { message += "; expected [" + expected.map(DataIO.quoted).joined(separator: ", ") + "]" }
            throw DataError(file: file, line: header.line, message: message)
        }
    }

    /// 0-based position of a required column.
    func position(_ name: String) -> Int { index[name]! }

    /// "3 (label)": 1-based position and name, for errors.
    func label(_ position: Int) -> String {
        position < names.count ? "\(position + 1) (\(names[position]))" : "\(position + 1)"
    }

    /// Checks that a data record has as many fields as the header.
    func checkWidth(_ record: DelimitedRecord) -> DataError? {
        if let error = record.error { return error }
        if record.fields.isEmpty {
            return DataError(file: file, line: record.line,
                             message: "empty line; expected \(names.count) columns as in the header")
        }
        guard record.fields.count == names.count else {
            let kind = record.fields.count < names.count ? "missing columns" : "extra columns"
            return DataError(file: file, line: record.line,
                             message: "\(kind): expected \(names.count) fields as in the header, found " +
                                "\(record.fields.count)")
        }
        return nil
    }
}

import Foundation

/// A strict JSON parser (RFC 8259) that remembers the line of every value, so SQuAD errors can name the file, the
/// JSON path and the line. Foundation's decoders report neither the line of a syntax error nor the path of a
/// non-integer number, hence this small reader. Internal to the SQuAD reader; nested in an enum so its names cannot
/// collide with other JSON helpers in the module.
///
/// Differences from Python's `json` (what Hugging Face uses), all of them rejections of files Python would accept:
/// duplicate keys in one object (Python keeps the last), `NaN`/`Infinity`, and lone UTF-16 surrogate escapes
/// (a Swift `String` cannot hold them). A leading UTF-8 byte-order mark is skipped.
enum SQuADJSON {
    /// One parsed value and the 1-based line where it starts.
    struct Node {
        enum Value {
            case object([(key: String, node: Node)])
            case array([Node])
            case string(String)
            /// The number as written, e.g. `"42"` or `"-1.5e3"`.
            case number(String)
            case bool(Bool)
            case null
        }
        var value: Value
        var line: Int

        /// The JSON type name used in error messages.
        var typeName: String {
            switch value {
            case .object: return "an object"
            case .array: return "an array"
            case .string: return "a string"
            case .number: return "a number"
            case .bool: return "a boolean"
            case .null: return "null"
            }
        }
    }

    /// A syntax or encoding error at a 1-based line and column (column in bytes).
    struct SyntaxError: Error {
        var message: String
        var line: Int
        var column: Int
    }

    /// Parses a whole document; `bytes` must hold exactly one JSON value, optionally surrounded by whitespace.
    static func parse(_ bytes: [UInt8]) throws -> Node {
        var p = Parser(bytes: bytes)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { p.pos = 3; p.lineStart = 3 }
        try p.validateUTF8()
        p.skipWhitespace()
        let node = try p.parseValue(depth: 0)
        p.skipWhitespace()
        if p.pos < bytes.count { throw p.error("unexpected \(p.describeByte()) after the top-level value") }
        return node
    }

    private struct Parser {
        let bytes: [UInt8]
        var pos = 0
        var line = 1
        var lineStart = 0
        static let maxDepth = 512

        init(bytes: [UInt8]) { self.bytes = bytes }

        func error(_ message: String, at position: Int? = nil) -> SyntaxError {
            let at = position ?? pos
            return SyntaxError(message: message, line: line, column: at - lineStart + 1)
        }

        func describeByte() -> String {
            guard pos < bytes.count else { return "end of file" }
            let b = bytes[pos]
            return (0x21...0x7E).contains(b) ? "'\(Character(Unicode.Scalar(b)))'" : String(format: "byte 0x%02X", b)
        }

        /// Rejects malformed UTF-8 up front, naming the byte offset and line of the first bad sequence.
        func validateUTF8() throws {
            var line = 1, lineStart = 0
            var i = pos
            let n = bytes.count
            while i < n {
                let b = bytes[i]
                if b < 0x80 {
                    if b == 0x0A { line += 1; lineStart = i + 1 }
                    i += 1
                    continue
                }
                let length: Int, minimum: UInt32
                var scalar: UInt32
                switch b {
                case 0xC2...0xDF: length = 2; minimum = 0x80; scalar = UInt32(b & 0x1F)
                case 0xE0...0xEF: length = 3; minimum = 0x800; scalar = UInt32(b & 0x0F)
                case 0xF0...0xF4: length = 4; minimum = 0x10000; scalar = UInt32(b & 0x07)
                default: length = 0; minimum = 0; scalar = 0
                }
                var ok = length > 0 && i + length <= n
                if ok {
                    for k in 1..<length {
                        let c = bytes[i + k]
                        if c & 0xC0 != 0x80 { ok = false; break }
                        scalar = scalar << 6 | UInt32(c & 0x3F)
                    }
                }
                if ok && (scalar < minimum || scalar > 0x10FFFF || (0xD800...0xDFFF).contains(scalar)) { ok = false }
                if !ok {
                    throw SyntaxError(message: String(format: "invalid UTF-8 (byte 0x%02X at byte offset %d)", b, i),
                                      line: line, column: i - lineStart + 1)
                }
                i += length
            }
        }

        mutating func skipWhitespace() {
            while pos < bytes.count {
                switch bytes[pos] {
                case 0x20, 0x09, 0x0D: pos += 1
                case 0x0A: pos += 1; line += 1; lineStart = pos
                default: return
                }
            }
        }

        mutating func parseValue(depth: Int) throws -> Node {
            guard depth < Parser.maxDepth else { throw error("nesting deeper than \(Parser.maxDepth) levels") }
            guard pos < bytes.count else { throw error("unexpected end of file, expected a value") }
            let startLine = line
            switch bytes[pos] {
            case UInt8(ascii: "{"): return Node(value: try parseObject(depth: depth), line: startLine)
            case UInt8(ascii: "["): return Node(value: try parseArray(depth: depth), line: startLine)
            case UInt8(ascii: "\""): return Node(value: .string(try parseString()), line: startLine)
            case UInt8(ascii: "t"): try expectLiteral("true"); return Node(value: .bool(true), line: startLine)
            case UInt8(ascii: "f"): try expectLiteral("false"); return Node(value: .bool(false), line: startLine)
            case UInt8(ascii: "n"): try expectLiteral("null"); return Node(value: .null, line: startLine)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return Node(value: .number(try parseNumber()), line: startLine)
            default: throw error("unexpected \(describeByte()), expected a value")
            }
        }

        mutating func expectLiteral(_ word: String) throws {
            let w = Array(word.utf8)
            guard pos + w.count <= bytes.count, Array(bytes[pos..<(pos + w.count)]) == w else {
                throw error("unexpected \(describeByte()), expected a value")
            }
            pos += w.count
        }

        mutating func parseObject(depth: Int) throws -> Node.Value {
            pos += 1
            var members: [(key: String, node: Node)] = []
            var seen = Set<[Unicode.Scalar]>()
            skipWhitespace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
            while true {
                skipWhitespace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else {
                    throw error("unexpected \(describeByte()), expected a string key")
                }
                let keyPos = pos
                let key = try parseString()
                // Keys compare by scalars, as Python's dict does (Swift's == would equate canonically equivalent keys).
                if !seen.insert(Array(key.unicodeScalars)).inserted {
                    throw error("duplicate key \"\(key)\" in one object", at: keyPos)
                }
                skipWhitespace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else {
                    throw error("unexpected \(describeByte()), expected ':' after a key")
                }
                pos += 1
                skipWhitespace()
                members.append((key, try parseValue(depth: depth + 1)))
                skipWhitespace()
                guard pos < bytes.count else { throw error("unexpected end of file inside an object") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
                throw error("unexpected \(describeByte()), expected ',' or '}' in an object")
            }
        }

        mutating func parseArray(depth: Int) throws -> Node.Value {
            pos += 1
            var items: [Node] = []
            skipWhitespace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
            while true {
                skipWhitespace()
                items.append(try parseValue(depth: depth + 1))
                skipWhitespace()
                guard pos < bytes.count else { throw error("unexpected end of file inside an array") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
                throw error("unexpected \(describeByte()), expected ',' or ']' in an array")
            }
        }

        mutating func parseNumber() throws -> String {
            let start = pos
            func digits() -> Int {
                let s = pos
                while pos < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[pos]) { pos += 1 }
                return pos - s
            }
            if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            guard pos < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[pos]) else {
                throw error("malformed number")
            }
            if bytes[pos] == UInt8(ascii: "0") { pos += 1 } else { _ = digits() }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
                pos += 1
                guard digits() > 0 else { throw error("malformed number: no digits after '.'") }
            }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
                pos += 1
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
                guard digits() > 0 else { throw error("malformed number: no digits in the exponent") }
            }
            return String(decoding: bytes[start..<pos], as: UTF8.self)
        }

        mutating func parseHex4() throws -> UInt32 {
            guard pos + 4 <= bytes.count else { throw error("unexpected end of file in a \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let b = bytes[pos]
                let d: UInt8
                switch b {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = b - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
                default: throw error("invalid hex digit \(describeByte()) in a \\u escape")
                }
                v = v << 4 | UInt32(d)
                pos += 1
            }
            return v
        }

        mutating func parseString() throws -> String {
            pos += 1
            let start = pos
            // Fast path: no escapes. The bytes were validated as UTF-8 already.
            while pos < bytes.count {
                let b = bytes[pos]
                if b == UInt8(ascii: "\"") {
                    let s = String(decoding: bytes[start..<pos], as: UTF8.self)
                    pos += 1
                    return s
                }
                if b == UInt8(ascii: "\\") { break }
                if b < 0x20 { throw error(String(format: "invalid control character 0x%02X in a string", b)) }
                pos += 1
            }
            var scalars = String.UnicodeScalarView()
            scalars.append(contentsOf: String(decoding: bytes[start..<pos], as: UTF8.self).unicodeScalars)
            while true {
                guard pos < bytes.count else { throw error("unexpected end of file inside a string") }
                let b = bytes[pos]
                if b == UInt8(ascii: "\"") { pos += 1; return String(scalars) }
                if b < 0x20 { throw error(String(format: "invalid control character 0x%02X in a string", b)) }
                if b != UInt8(ascii: "\\") {
                    let runStart = pos
                    while pos < bytes.count, bytes[pos] != UInt8(ascii: "\""), bytes[pos] != UInt8(ascii: "\\"),
                          bytes[pos] >= 0x20 { pos += 1 }
                    scalars.append(contentsOf: String(decoding: bytes[runStart..<pos], as: UTF8.self).unicodeScalars)
                    continue
                }
                let escapePos = pos
                pos += 1
                guard pos < bytes.count else { throw error("unexpected end of file in an escape") }
                let e = bytes[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    var v = try parseHex4()
                    if (0xD800...0xDBFF).contains(v) {
                        guard pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u")
                        else { throw error("lone UTF-16 surrogate escape", at: escapePos) }
                        pos += 2
                        let low = try parseHex4()
                        guard (0xDC00...0xDFFF).contains(low) else {
                            throw error("lone UTF-16 surrogate escape", at: escapePos)
                        }
                        v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(v) {
                        throw error("lone UTF-16 surrogate escape", at: escapePos)
                    }
                    scalars.append(Unicode.Scalar(v)!)
                default:
                    throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))' in a string", at: escapePos)
                }
            }
        }
    }
}

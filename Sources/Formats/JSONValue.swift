// JSONValue: a parsed JSON value, for checking files by hand, for messages, and for writing config.json.

/// A parsed JSON value. Booleans, integers and other numbers are kept apart (JSONSerialization does not on
/// Linux), so a value of `2.5` or `1e30` is caught where an integer is needed. A number that fits neither `Int`
/// nor `Double` (`1e400`) does not decode.
public indirect enum JSONValue: Decodable, Equatable, Sendable {
    case null, bool(Bool), integer(Int), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .integer(i) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    // MARK: - Access

    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var integer: Int? { if case .integer(let i) = self { return i }; return nil }
    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var array: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var object: [String: JSONValue]? { if case .object(let o) = self { return o }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }

    /// The value at a decoding path (object members by name, array elements by index); nil where the path leads
    /// nowhere.
    public func at(path: [CodingKey]) -> JSONValue? {
        var node = self
        for key in path {
            switch node {
            case .object(let members):
                guard let next = members[key.stringValue] else { return nil }
                node = next
            case .array(let elements):
                guard let i = key.intValue, elements.indices.contains(i) else { return nil }
                node = elements[i]
            default:
                return nil
            }
        }
        return node
    }

    // MARK: - Messages

    /// "null", "a boolean", "a number" (integer or not), "a string", "an array" or "an object", for messages.
    public var kind: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .integer, .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// The kind with the value of a scalar: "a string (\"12\")", "an integer (3)", "a non-integer number (2.5)",
    /// "a number too large for an integer (1e+30)", "an array", … for messages.
    public var summary: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return "a boolean (\(b))"
        case .integer(let i): return "an integer (\(i))"
        case .number(let d): return d == d.rounded() ? "a number too large for an integer (\(d))" : "a non-integer number (\(d))"
        case .string(let s): return "a string (\"\(s)\")"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// What a Swift type decodes from, for messages: "an integer", "a number", "a string", "a boolean", "an array
    /// of integers" (`[Int]`), "an array" (any other array), "an object" (`[String: String]`, `[String: Int]`);
    /// `otherwise` for any other type.
    public static func describe(_ type: Any.Type, otherwise: String = "a value of the right type") -> String {
        switch type {
        case is Int.Type: return "an integer"
        case is Double.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "a boolean"
        case is [Int].Type: return "an array of integers"
        case is [String: String].Type, is [String: Int].Type: return "an object"
        default: return String(describing: type).hasPrefix("Array<") ? "an array" : otherwise
        }
    }

    // MARK: - Writing

    /// The value as JSON on one line: `[2, 2.5]`, `{"a": 1, "b": "x"}` — keys sorted, `", "` and `": "` between
    /// items, strings through `JSON.quote`, numbers in their shortest round-trip form. Also the form messages
    /// quote a value in.
    public var text: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .integer(let i): return String(i)
        case .number(let d): return d.description
        case .string(let s): return JSON.quote(s)
        case .array(let items): return "[" + items.map(\.text).joined(separator: ", ") + "]"
        case .object(let members):
            return "{" + members.keys.sorted().map { JSON.quote($0) + ": " + members[$0]!.text }.joined(separator: ", ") + "}"
        }
    }

    /// The value as pretty JSON, the form of a compact model's config.json: objects with sorted keys, one member
    /// per line, 2-space indent; arrays of scalars on one line (a layer's 3,072 unit indices would otherwise take
    /// 3,072 lines), other arrays one element per line; numbers in their shortest round-trip form (0.1, 1e-12).
    /// No trailing newline.
    public var prettyText: String {
        var out = ""
        writePretty(to: &out, indent: "")
        return out
    }

    private var isContainer: Bool {
        switch self {
        case .array, .object: return true
        default: return false
        }
    }

    private func writePretty(to out: inout String, indent: String) {
        let inner = indent + "  "
        switch self {
        case .null, .bool, .integer, .number, .string:
            out += text
        case .array(let items):
            if items.contains(where: \.isContainer) {
                out += "[\n"
                for (k, item) in items.enumerated() {
                    out += inner
                    item.writePretty(to: &out, indent: inner)
                    out += k + 1 < items.count ? ",\n" : "\n"
                }
                out += indent + "]"
            } else {
                out += "[" + items.map(\.text).joined(separator: ", ") + "]"
            }
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            out += "{\n"
            let keys = members.keys.sorted()
            for (k, key) in keys.enumerated() {
                out += inner + JSON.quote(key) + ": "
                members[key]!.writePretty(to: &out, indent: inner)
                out += k + 1 < keys.count ? ",\n" : "\n"
            }
            out += indent + "}"
        }
    }
}

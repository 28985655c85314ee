// JSON: the one JSON string escaper of the project's hand-written JSON.

import Foundation

/// Helpers for JSON text written by hand (metrics lines, safetensors headers, the compact config.json).
public enum JSON {
    /// `s` as a JSON string literal: `"` and `\` are escaped with a backslash, newline, carriage return and tab as
    /// `\n`, `\r`, `\t`, the other control characters (below U+0020) as `\u00xx` with lower-case hex digits;
    /// everything else, `/` and non-ASCII included, is written as it is (UTF-8 once encoded).
    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// A JSON object with the keys in the given order, on one line (metrics lines, benchmark results). Values:
    /// `String`; `Bool`, `Int`, `UInt64`; `Double` and `Float` in Swift's shortest round-trip form (`null` when not
    /// finite); nil (`null`); `JSON.Raw` as it is; arrays; `[(String, Any?)]` (nested, in order) and dictionaries
    /// (keys sorted); anything else as the string of its description.
    public static func object(_ fields: [(String, Any?)]) -> String {
        "{" + fields.map { "\(quote($0.0)):\(value($0.1))" }.joined(separator: ",") + "}"
    }

    static func value(_ v: Any?) -> String {
        guard let v else { return "null" }
        // Exact type checks: on Linux a bridged NSNumber would match `as? Bool` as readily as `as? Int`.
        let type = Swift.type(of: v)
        switch v {
        case let r as Raw: return r.text
        case let s as String: return quote(s)
        case let o as [(String, Any?)]: return object(o)
        case let d as [String: Any]: return object(d.keys.sorted().map { ($0, d[$0]) })
        case let d as [String: String]: return object(d.keys.sorted().map { ($0, d[$0]) })
        case let a as [Any]: return "[" + a.map { value($0) }.joined(separator: ",") + "]"
        default: break
        }
        if type == Bool.self { return (v as! Bool) ? "true" : "false" }
        if type == Int.self { return String(v as! Int) }
        if type == UInt64.self { return String(v as! UInt64) }
        if type == Double.self { let d = v as! Double; return d.isFinite ? "\(d)" : "null" }
        if type == Float.self { let f = v as! Float; return f.isFinite ? "\(Double(f))" : "null" }
        return quote("\(v)")
    }

    /// Text that is already JSON, written as it is.
    public struct Raw: Sendable {
        public let text: String
        public init(_ text: String) { self.text = text }

        /// `value` encoded with sorted keys.
        public init<T: Encodable>(encoding value: T) {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            text = (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
        }

        /// `x` with `digits` decimals (`%.Nf`), `null` when not finite: fixed-precision numbers for results tables.
        public init(_ x: Double, digits: Int) {
            text = x.isFinite ? String(format: "%.\(digits)f", x) : "null"
        }
    }
}

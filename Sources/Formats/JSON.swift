// JSON: the one JSON string escaper of the project's hand-written JSON.

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
}

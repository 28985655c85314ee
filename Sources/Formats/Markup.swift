// Markup: the one escaper of text written into HTML and SVG (XML) by hand.

/// Helpers for HTML and SVG written by hand (the `cofi serve` page, the report's SVG charts).
public enum Markup {
    /// `s` as text safe inside an element or a quoted attribute value of HTML or XML: `&`, `<`, `>`, `"` and `'`
    /// become the entities `&amp;`, `&lt;`, `&gt;`, `&quot;` and `&#39;`; everything else is kept as it is.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}

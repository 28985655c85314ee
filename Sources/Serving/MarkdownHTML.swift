import Formats
import Foundation

/// Markdown — a model card's README.md — as HTML that is safe to put in the `cofi serve` page.
///
/// A small renderer of the Markdown that model cards use, not a CommonMark implementation: YAML front matter
/// (between `---` lines at the very top; shown as a collapsed code block, since Hugging Face cards keep their
/// metadata there), ATX (`## …`) and setext (`…` over `===` / `---`) headings, paragraphs, `**bold**`, `*emphasis*`,
/// `` `code` `` spans, fenced code blocks (``` or ~~~), pipe tables (with `:---:` alignment), bullet and numbered
/// lists (nested by indentation), block quotes, thematic breaks, backslash escapes and line breaks. Links become
/// anchors only for `http`, `https` and `mailto` targets (they are navigation, never loaded by the page); images
/// become their alt text, so the page loads nothing from elsewhere.
///
/// Safety: every character of the input reaches the output through `Markup.escape` or as one of the tags this
/// renderer writes itself — raw HTML in the Markdown is shown as text, never passed through — and no tag written
/// carries a `style` or event attribute, so the result fits the page's Content-Security-Policy.
public enum MarkdownHTML {
    /// The HTML of `markdown`: a sequence of block elements, one per line or group of lines.
    public static func render(_ markdown: String) -> String {
        let text = markdown.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
            .replacingOccurrences(of: "\t", with: "    ")
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var out = ""
        if let (matter, rest) = frontMatter(lines) {
            out += "<details class=\"front-matter\"><summary>Front matter (YAML)</summary><pre><code>"
                + Markup.escape(matter.joined(separator: "\n")) + "</code></pre></details>\n"
            lines = rest
        }
        return out + blocks(lines, tight: false, depth: 0)
    }

    /// How deep block quotes and lists, and links and emphasis, may nest; deeper ones are shown as text (so that a
    /// line of ten thousand `>` cannot exhaust the stack).
    static let maxNesting = 16

    /// The front matter's lines and the rest, when the document opens with a `---` line closed by a `---` or `...`
    /// line; nil otherwise.
    static func frontMatter(_ lines: [String]) -> ([String], [String])? {
        guard let first = lines.first, first.trimmingTrailingSpaces == "---" else { return nil }
        guard let close = lines.indices.dropFirst().first(where: {
            ["---", "..."].contains(lines[$0].trimmingTrailingSpaces)
        }) else { return nil }
        return (Array(lines[1..<close]), Array(lines[(close + 1)...]))
    }

    // MARK: Blocks

    /// The HTML of a run of lines; `tight`: paragraphs without `<p>` (the items of a list with no blank lines);
    /// `depth`: the block quotes and lists around them.
    static func blocks(_ lines: [String], tight: Bool, depth: Int) -> String {
        guard depth < maxNesting else {
            return "<p>" + Markup.escape(lines.joined(separator: "\n")) + "</p>\n"
        }
        var out = ""
        var i = 0
        while i < lines.count {
            let line = lines[i]
            if line.isBlank {
                i += 1
            } else if let fence = Fence(line) {
                var body: [String] = []
                i += 1
                while i < lines.count, !fence.isClosed(by: lines[i]) {
                    body.append(String(lines[i].dropLeadingSpaces(upTo: fence.indent)))
                    i += 1
                }
                i += 1  // the closing fence (or the end)
                let language = fence.language.map { " class=\"language-\(Markup.escape($0))\"" } ?? ""
                out += "<pre><code\(language)>" + Markup.escape(body.joined(separator: "\n")) + "</code></pre>\n"
            } else if let (level, title) = atxHeading(line) {
                out += "<h\(level)>\(inline(title))</h\(level)>\n"
                i += 1
            } else if isThematicBreak(line) {
                out += "<hr>\n"
                i += 1
            } else if i + 1 < lines.count, line.contains("|"), let alignments = tableDelimiter(lines[i + 1]) {
                var rows: [String] = []
                i += 2
                while i < lines.count, !lines[i].isBlank, lines[i].contains("|") {
                    rows.append(lines[i])
                    i += 1
                }
                out += table(header: line, alignments: alignments, rows: rows)
            } else if let quoted = blockQuoteLine(line) {
                var body = [quoted]
                i += 1
                while i < lines.count, !lines[i].isBlank {
                    body.append(blockQuoteLine(lines[i]) ?? lines[i])
                    i += 1
                }
                out += "<blockquote>\n" + blocks(body, tight: false, depth: depth + 1) + "</blockquote>\n"
            } else if ListMarker(line) != nil {
                out += list(lines, from: &i, depth: depth)
            } else {
                out += paragraph(lines, from: &i, tight: tight)
            }
        }
        return out
    }

    /// A paragraph from line `i` up to a blank line or the start of another block (a setext underline makes it a
    /// heading); `i` ends past it.
    static func paragraph(_ lines: [String], from i: inout Int, tight: Bool) -> String {
        var text: [String] = [lines[i].trimmingLeadingSpaces]
        i += 1
        while i < lines.count {
            let line = lines[i]
            if let level = setextLevel(line) {
                i += 1
                return "<h\(level)>\(inline(text.joined(separator: "\n")))</h\(level)>\n"
            }
            let startsTable = line.contains("|") && i + 1 < lines.count && tableDelimiter(lines[i + 1]) != nil
            if line.isBlank || Fence(line) != nil || atxHeading(line) != nil || isThematicBreak(line) || startsTable
                || blockQuoteLine(line) != nil || ListMarker(line).map({ $0.canInterruptParagraph }) == true {
                break
            }
            text.append(line.trimmingLeadingSpaces)
            i += 1
        }
        let html = inline(text.joined(separator: "\n"))
        return tight ? html + "\n" : "<p>\(html)</p>\n"
    }

    /// A list from line `i` (a list marker) through its last item; `i` ends past it. An item is its marker's line
    /// and the lines indented to its content (or lazily continuing its paragraph); it is rendered as blocks, so
    /// lists nest. A list with no blank line between or inside its items is tight.
    static func list(_ lines: [String], from i: inout Int, depth: Int) -> String {
        let first = ListMarker(lines[i])!
        var items: [[String]] = []
        var loose = false
        while i < lines.count, let marker = ListMarker(lines[i]), marker.ordered == first.ordered,
              marker.indent < first.contentIndent {
            var item = [marker.content]
            i += 1
            var blankBefore = false
            while i < lines.count {
                let line = lines[i]
                if line.isBlank {
                    blankBefore = true
                    item.append("")
                    i += 1
                } else if line.leadingSpaces >= marker.contentIndent {
                    if blankBefore { loose = true }
                    blankBefore = false
                    item.append(String(line.dropLeadingSpaces(upTo: marker.contentIndent)))
                    i += 1
                } else if !blankBefore, ListMarker(line) == nil, Fence(line) == nil, atxHeading(line) == nil,
                          !isThematicBreak(line), blockQuoteLine(line) == nil {
                    item.append(line.trimmingLeadingSpaces)  // a lazy continuation of the item's paragraph
                    i += 1
                } else {
                    break
                }
            }
            while item.last?.isBlank == true { item.removeLast() }
            items.append(item)
            // A blank line before the next item of this list makes it loose; before anything else it ends the list.
            if blankBefore, i < lines.count, let next = ListMarker(lines[i]), next.ordered == first.ordered,
               next.indent < first.contentIndent {
                loose = true
            }
        }
        let tag = first.ordered ? "ol" : "ul"
        let start = first.ordered && first.number != 1 ? " start=\"\(first.number)\"" : ""
        let body = items.map { "<li>" + blocks($0, tight: !loose, depth: depth + 1) + "</li>\n" }.joined()
        return "<\(tag)\(start)>\n" + body + "</\(tag)>\n"
    }

    /// A pipe table: the header row, the alignments of its delimiter row, the body rows (cells beyond the header's
    /// are dropped, missing ones are empty).
    static func table(header: String, alignments: [String?], rows: [String]) -> String {
        func row(_ line: String, cell: String) -> String {
            let cells = tableCells(line)
            return "<tr>" + alignments.indices.map { k in
                let align = alignments[k].map { " class=\"align-\($0)\"" } ?? ""
                return "<\(cell)\(align)>" + inline(k < cells.count ? cells[k] : "") + "</\(cell)>"
            }.joined() + "</tr>\n"
        }
        return "<div class=\"table\"><table>\n<thead>\n" + row(header, cell: "th") + "</thead>\n<tbody>\n"
            + rows.map { row($0, cell: "td") }.joined() + "</tbody>\n</table></div>\n"
    }

    /// The cells of a table row, split at `|` outside code spans and not escaped, with the outer pipes dropped.
    static func tableCells(_ line: String) -> [String] {
        var cells: [String] = []
        var cell = ""
        var inCode = false
        var escaped = false
        for c in line.trimmingLeadingSpaces.trimmingTrailingSpaces {
            if escaped {
                cell += c == "|" ? "|" : "\\\(c)"
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else if c == "`" {
                inCode.toggle()
                cell.append(c)
            } else if c == "|", !inCode {
                cells.append(cell)
                cell = ""
            } else {
                cell.append(c)
            }
        }
        if escaped { cell += "\\" }
        cells.append(cell)
        if cells.first?.isBlank == true, cells.count > 1 { cells.removeFirst() }
        if cells.last?.isBlank == true, cells.count > 1 { cells.removeLast() }
        return cells.map { $0.trimmingLeadingSpaces.trimmingTrailingSpaces }
    }

    /// The alignments of a table's delimiter row (`| --- | :-: | --: |`: nil, "center", "right"), or nil when the line
    /// is not one.
    static func tableDelimiter(_ line: String) -> [String?]? {
        guard line.contains("-") else { return nil }
        let cells = tableCells(line)
        guard line.contains("|") || cells.count > 1 else { return nil }
        var alignments: [String?] = []
        for cell in cells {
            let dashes = cell.trimmingCharacters(in: [":"])
            guard !dashes.isEmpty, dashes.allSatisfy({ $0 == "-" }) else { return nil }
            switch (cell.hasPrefix(":"), cell.hasSuffix(":")) {
            case (true, true): alignments.append("center")
            case (false, true): alignments.append("right")
            case (true, false): alignments.append("left")
            case (false, false): alignments.append(nil)
            }
        }
        return alignments
    }

    /// An ATX heading's level and text (closing `#`s dropped), or nil.
    static func atxHeading(_ line: String) -> (Int, String)? {
        guard line.leadingSpaces <= 3 else { return nil }
        let rest = line.trimmingLeadingSpaces
        let level = rest.prefix(while: { $0 == "#" }).count
        guard (1...6).contains(level) else { return nil }
        let after = rest.dropFirst(level)
        guard after.isEmpty || after.first == " " else { return nil }
        var title = after.trimmingLeadingSpaces.trimmingTrailingSpaces
        let closing = title.reversed().prefix(while: { $0 == "#" }).count
        if closing > 0, closing == title.count || title.dropLast(closing).last == " " {
            title = String(title.dropLast(closing)).trimmingTrailingSpaces
        }
        return (level, title)
    }

    /// The level of a setext underline (`===`: 1, `---`: 2), or nil.
    static func setextLevel(_ line: String) -> Int? {
        guard line.leadingSpaces <= 3 else { return nil }
        let rest = line.trimmingLeadingSpaces.trimmingTrailingSpaces
        guard let c = rest.first, c == "=" || c == "-", rest.allSatisfy({ $0 == c }) else { return nil }
        return c == "=" ? 1 : 2
    }

    /// Whether the line is a thematic break: three or more `-`, `*` or `_` (spaces between allowed).
    static func isThematicBreak(_ line: String) -> Bool {
        guard line.leadingSpaces <= 3 else { return false }
        let marks = line.filter { $0 != " " }
        guard let c = marks.first, "-*_".contains(c) else { return false }
        return marks.count >= 3 && marks.allSatisfy { $0 == c }
    }

    /// The line without its block-quote marker (`> `), or nil when it has none.
    static func blockQuoteLine(_ line: String) -> String? {
        guard line.leadingSpaces <= 3 else { return nil }
        let rest = line.trimmingLeadingSpaces
        guard rest.first == ">" else { return nil }
        let after = rest.dropFirst()
        return String(after.first == " " ? after.dropFirst() : after)
    }

    /// A fenced code block's opening line: ``` or ~~~ (three or more), and an optional language word.
    struct Fence {
        let character: Character
        let length: Int
        let indent: Int
        let language: String?

        init?(_ line: String) {
            indent = line.leadingSpaces
            let rest = line.trimmingLeadingSpaces
            guard indent <= 3, let c = rest.first, c == "`" || c == "~" else { return nil }
            length = rest.prefix(while: { $0 == c }).count
            let info = rest.dropFirst(length).trimmingLeadingSpaces.trimmingTrailingSpaces
            guard length >= 3, !(c == "`" && info.contains("`")) else { return nil }
            character = c
            let word = info.prefix(while: { $0 != " " })
            language = word.isEmpty ? nil : String(word.filter { $0.isLetter || $0.isNumber || "-_+.".contains($0) })
        }

        /// Whether `line` closes the block: the same character, at least as many, nothing after.
        func isClosed(by line: String) -> Bool {
            let rest = line.trimmingLeadingSpaces.trimmingTrailingSpaces
            return line.leadingSpaces <= 3 && rest.count >= length && rest.allSatisfy { $0 == character }
        }
    }

    /// A list item's marker: `-`, `*`, `+` or a number with `.` or `)`, followed by a space (or nothing).
    struct ListMarker {
        let ordered: Bool
        let number: Int
        /// Spaces before the marker.
        let indent: Int
        /// The column of the item's content; lines indented this far belong to the item.
        let contentIndent: Int
        /// The rest of the marker's line.
        let content: String

        init?(_ line: String) {
            indent = line.leadingSpaces
            let rest = Substring(line.trimmingLeadingSpaces)
            guard indent <= 3, let c = rest.first else { return nil }
            var markerLength: Int
            if "-*+".contains(c) {
                ordered = false
                number = 0
                markerLength = 1
            } else {
                let digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
                guard (1...9).contains(digits.count), let n = Int(digits),
                      let after = rest.dropFirst(digits.count).first, after == "." || after == ")" else { return nil }
                ordered = true
                number = n
                markerLength = digits.count + 1
            }
            let after = rest.dropFirst(markerLength)
            guard after.isEmpty || after.first == " " else { return nil }
            let spaces = after.prefix(while: { $0 == " " }).count
            // More than four spaces after the marker: the content starts after one (the rest is indentation).
            let gap = after.allSatisfy({ $0 == " " }) ? 1 : (spaces > 4 ? 1 : spaces)
            contentIndent = indent + markerLength + gap
            content = String(after.dropFirst(min(gap, spaces)))
            if !ordered, isThematicBreak(line) { return nil }
        }

        /// Whether this marker may end a paragraph (CommonMark: a bullet, or a list starting at 1, and not empty).
        var canInterruptParagraph: Bool { !content.isBlank && (!ordered || number == 1) }
    }

    // MARK: Inlines

    /// The HTML of a paragraph's or a cell's text: code spans, strong and emphasis, links, images (their alt
    /// text), backslash escapes and hard line breaks; everything else escaped.
    static func inline(_ text: String, depth: Int = 0) -> String {
        var scanner = InlineScanner(text, depth: depth)
        return scanner.html()
    }

    /// One run of inline text, read left to right. Closing delimiters are found in time linear in the text, so
    /// that a card full of unmatched `*`, `` ` `` or `[` cannot stall the server's start: brackets and parentheses
    /// are matched in one pass beforehand, and a search for a closer that fails is remembered — a later opener of
    /// the same kind would search a part of the same text.
    struct InlineScanner {
        let chars: [Character]
        /// The emphasis and links around this text; at `maxNesting`, none is read.
        let depth: Int
        /// The index of the `]` that closes each `[`, and of the `)` that closes each `(` (those that are closed).
        let closer: [Int: Int]
        /// The delimiter kinds (`*1`, `*2`, `_1`, `_2`; `` `N `` for a backtick run of N) whose search for a closer
        /// found none from this index to the end.
        var noCloserFrom: [String: Int] = [:]

        init(_ text: String, depth: Int) {
            chars = Array(text)
            self.depth = depth
            var closer: [Int: Int] = [:]
            var open: [Character: [Int]] = ["[": [], "(": []]
            var k = 0
            while k < chars.count {
                switch chars[k] {
                case "\\": k += 1  // an escaped character opens and closes nothing
                case "[", "(": open[chars[k]]!.append(k)
                case "]": if let i = open["["]!.popLast() { closer[i] = k }
                case ")": if let i = open["("]!.popLast() { closer[i] = k }
                default: break
                }
                k += 1
            }
            self.closer = closer
        }

        mutating func html() -> String {
            var out = ""
            var i = 0
            while i < chars.count {
                let c = chars[i]
                let next: Character? = i + 1 < chars.count ? chars[i + 1] : nil
                if c == "\\", let next, next.isASCII, next.isPunctuation || next.isSymbol {
                    out += Markup.escape(String(next))
                    i += 2
                } else if c == "\\", next == "\n" {
                    out += "<br>\n"
                    i += 2
                } else if c == "\n" {
                    out += out.hasSuffix("  ") ? "<br>\n" : "\n"
                    i += 1
                } else if c == "`", let (code, end) = codeSpan(at: i) {
                    out += "<code>" + Markup.escape(code) + "</code>"
                    i = end
                } else if c == "*" || c == "_", depth < maxNesting, let (tag, inner, end) = emphasis(at: i) {
                    out += "<\(tag)>" + MarkdownHTML.inline(inner, depth: depth + 1) + "</\(tag)>"
                    i = end
                } else if c == "[" || (c == "!" && next == "["), depth < maxNesting,
                          let (label, target, end) = link(at: c == "!" ? i + 1 : i) {
                    if c == "!" {
                        out += Markup.escape(label)
                    } else if ["http://", "https://", "mailto:"].contains(where: { target.lowercased().hasPrefix($0) }) {
                        out += "<a href=\"\(Markup.escape(target))\" rel=\"noopener noreferrer\">"
                            + MarkdownHTML.inline(label, depth: depth + 1) + "</a>"
                    } else {
                        out += MarkdownHTML.inline(label, depth: depth + 1)
                    }
                    i = end
                } else {
                    out += Markup.escape(String(c))
                    i += 1
                }
            }
            return out
        }

        /// A code span opening at `i` (a run of backticks closed by a run of the same length): its text (one space
        /// trimmed from each end when both have one) and the index past it; nil when it is not closed.
        mutating func codeSpan(at i: Int) -> (String, Int)? {
            let run = chars[i...].prefix(while: { $0 == "`" }).count
            let kind = "`\(run)"
            if let from = noCloserFrom[kind], i >= from { return nil }
            var j = i + run
            while j < chars.count {
                guard chars[j] == "`" else { j += 1; continue }
                let closing = chars[j...].prefix(while: { $0 == "`" }).count
                if closing == run {
                    var code = String(chars[(i + run)..<j]).replacingOccurrences(of: "\n", with: " ")
                    if code.count >= 2, code.hasPrefix(" "), code.hasSuffix(" "), !code.isBlank {
                        code = String(code.dropFirst().dropLast())
                    }
                    return (code, j + closing)
                }
                j += closing
            }
            noCloserFrom[kind] = min(noCloserFrom[kind] ?? i, i)
            return nil
        }

        /// Strong (`**…**`, `__…__`) or emphasis (`*…*`, `_…_`) opening at `i`: the tag, the text inside and the
        /// index past the closing delimiter; nil when the delimiter does not open one. The opening delimiter must be
        /// followed and the closing one preceded by a non-space; `_` must not be inside a word (so `max_length`
        /// stays as it is); code spans inside are skipped.
        mutating func emphasis(at i: Int) -> (String, String, Int)? {
            let c = chars[i]
            let width = i + 1 < chars.count && chars[i + 1] == c ? 2 : 1
            let kind = "\(c)\(width)"
            let open = i + width
            guard open < chars.count, !chars[open].isWhitespace, !(c == "_" && isWordCharacter(i - 1)) else { return nil }
            if let from = noCloserFrom[kind], open >= from { return nil }
            var j = open + 1
            while j + width <= chars.count {
                if chars[j] == "`", let (_, end) = codeSpan(at: j) { j = end; continue }
                let closes = (0..<width).allSatisfy { chars[j + $0] == c } && !chars[j - 1].isWhitespace
                    && (width == 2 || j + 1 >= chars.count || chars[j + 1] != c)
                    && !(c == "_" && isWordCharacter(j + width))
                if closes {
                    return (width == 2 ? "strong" : "em", String(chars[open..<j]), j + width)
                }
                j += 1
            }
            noCloserFrom[kind] = min(noCloserFrom[kind] ?? open, open)
            return nil
        }

        func isWordCharacter(_ k: Int) -> Bool { k >= 0 && k < chars.count && (chars[k].isLetter || chars[k].isNumber) }

        /// A link `[label](target)` opening at `i` (the `[`): its label, target (an optional `"title"` dropped) and
        /// the index past the `)`; nil when it is not one. Brackets in the label and parentheses in the target nest.
        func link(at i: Int) -> (String, String, Int)? {
            guard let j = closer[i], j + 1 < chars.count, chars[j + 1] == "(", let close = closer[j + 1] else {
                return nil
            }
            let inside = String(chars[(j + 2)..<close]).trimmingLeadingSpaces.trimmingTrailingSpaces
            let target = String(inside.prefix(while: { $0 != " " }))
            return (String(chars[(i + 1)..<j]), target.hasPrefix("<") && target.hasSuffix(">")
                        ? String(target.dropFirst().dropLast()) : target, close + 1)
        }
    }
}

private extension StringProtocol {
    var isBlank: Bool { allSatisfy { $0 == " " } }
    var leadingSpaces: Int { prefix(while: { $0 == " " }).count }
    var trimmingLeadingSpaces: String { String(drop(while: { $0 == " " })) }
    var trimmingTrailingSpaces: String { String(String(self).reversed().drop(while: { $0 == " " }).reversed()) }

    /// The line without up to `count` leading spaces.
    func dropLeadingSpaces(upTo count: Int) -> SubSequence { dropFirst(Swift.min(count, leadingSpaces)) }
}

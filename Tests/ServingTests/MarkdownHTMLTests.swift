import Foundation
import XCTest
@testable import Serving

/// `MarkdownHTML`, the model card's renderer: each block and inline form it knows, front matter, and that nothing
/// in the Markdown reaches the page as markup — raw HTML, a `javascript:` link or an attribute-breaking quote is
/// text.
final class MarkdownHTMLTests: XCTestCase {
    func testHeadingsParagraphsAndInlines() {
        XCTAssertEqual(MarkdownHTML.render("# Model *card*\n\nA **pruned** `BERT`\nwith 95% sparsity.\n\n### Use ##"),
                       "<h1>Model <em>card</em></h1>\n<p>A <strong>pruned</strong> <code>BERT</code>\n"
                       + "with 95% sparsity.</p>\n<h3>Use</h3>\n")
        XCTAssertEqual(MarkdownHTML.render("Title\n=====\nSub\n---"), "<h1>Title</h1>\n<h2>Sub</h2>\n")
        // `_` inside a word is not emphasis; a backslash escapes; two trailing spaces break the line.
        XCTAssertEqual(MarkdownHTML.render("max_length and type_vocab_size, \\*not em\\*, _em_  \nnext"),
                       "<p>max_length and type_vocab_size, *not em*, <em>em</em>  <br>\nnext</p>\n")
        XCTAssertEqual(MarkdownHTML.render("#hashtag and ***"), "<p>#hashtag and ***</p>\n")
        XCTAssertEqual(MarkdownHTML.render("a\n\n---\n\nb"), "<p>a</p>\n<hr>\n<p>b</p>\n")
        XCTAssertEqual(MarkdownHTML.render("> quoted **text**\n> more"),
                       "<blockquote>\n<p>quoted <strong>text</strong>\nmore</p>\n</blockquote>\n")
    }

    func testFencedCodeKeepsItsTextEscaped() {
        let markdown = "```python\nif a < b and c > d:\n    print(\"<b>\")\n```\n~~~\n```\n~~~"
        XCTAssertEqual(MarkdownHTML.render(markdown),
                       "<pre><code class=\"language-python\">if a &lt; b and c &gt; d:\n    print(&quot;&lt;b&gt;&quot;)"
                       + "</code></pre>\n<pre><code>```</code></pre>\n")
        // An unclosed fence runs to the end; a language word with markup is cut to its safe characters.
        XCTAssertEqual(MarkdownHTML.render("```js\"><script>\nx"),
                       "<pre><code class=\"language-jsscript\">x</code></pre>\n")
    }

    func testPipeTables() {
        let markdown = """
            | metric | value | note |
            | :--- | ---: | :-: |
            | accuracy | **0.91** | `dev` |
            | speedup | 4.2x |
            | a \\| b | c | d | extra |
            after
            """
        XCTAssertEqual(MarkdownHTML.render(markdown), """
            <div class="table"><table>
            <thead>
            <tr><th class="align-left">metric</th><th class="align-right">value</th><th class="align-center">note</th></tr>
            </thead>
            <tbody>
            <tr><td class="align-left">accuracy</td><td class="align-right"><strong>0.91</strong></td>\
            <td class="align-center"><code>dev</code></td></tr>
            <tr><td class="align-left">speedup</td><td class="align-right">4.2x</td><td class="align-center"></td></tr>
            <tr><td class="align-left">a | b</td><td class="align-right">c</td><td class="align-center">d</td></tr>
            </tbody>
            </table></div>
            <p>after</p>

            """)
    }

    func testListsNestAndLooseListsHaveParagraphs() {
        XCTAssertEqual(MarkdownHTML.render("- one\n- two\n  - two a\n  - two b\n- three\ncontinued"),
                       "<ul>\n<li>one\n</li>\n<li>two\n<ul>\n<li>two a\n</li>\n<li>two b\n</li>\n</ul>\n</li>\n"
                       + "<li>three\ncontinued\n</li>\n</ul>\n")
        XCTAssertEqual(MarkdownHTML.render("3. three\n\n4. four\n\npara"),
                       "<ol start=\"3\">\n<li><p>three</p>\n</li>\n<li><p>four</p>\n</li>\n</ol>\n<p>para</p>\n")
        XCTAssertEqual(MarkdownHTML.render("text\n2. not a list"), "<p>text\n2. not a list</p>\n")
    }

    func testFrontMatterIsACollapsedBlock() {
        let card = "---\nlicense: apache-2.0\ntags:\n- <cofi>\n---\n# Card\n"
        XCTAssertEqual(MarkdownHTML.render(card),
                       "<details class=\"front-matter\"><summary>Front matter (YAML)</summary><pre><code>"
                       + "license: apache-2.0\ntags:\n- &lt;cofi&gt;</code></pre></details>\n<h1>Card</h1>\n")
        // Not closed: not front matter (a thematic break, then text).
        XCTAssertEqual(MarkdownHTML.render("---\nlicense: mit"), "<hr>\n<p>license: mit</p>\n")
    }

    /// Unmatched delimiters by the ten thousand render in time linear in the text (the closer searches were
    /// quadratic: 60 KB of `*a ` took 275 s in a debug build; these texts take about a second in all), and nesting
    /// past `maxNesting` is text, not recursion.
    func testPathologicalCardsRenderQuicklyAndShallowly() {
        let start = Date()
        for unit in ["*a ", "_a ", "**a ", "`a ", "``a ", "[a ", "(a ", "\\"] {
            let text = String(repeating: unit, count: 10_000)
            XCTAssertTrue(MarkdownHTML.render(text).hasPrefix("<p>"), unit)
        }
        let links = String(repeating: "[", count: 10_000) + "a" + String(repeating: "](https://x)", count: 10_000)
        XCTAssertEqual(MarkdownHTML.render(links).components(separatedBy: "<a ").count - 1, MarkdownHTML.maxNesting)
        let quotes = MarkdownHTML.render(String(repeating: ">", count: 10_000) + " deep")
        XCTAssertEqual(quotes.components(separatedBy: "<blockquote>").count - 1, MarkdownHTML.maxNesting)
        XCTAssertTrue(quotes.contains("<p>" + String(repeating: "&gt;", count: 10_000 - MarkdownHTML.maxNesting)
                                      + " deep</p>"))
        let lists = MarkdownHTML.render(String(repeating: "- ", count: 10_000) + "deep")
        XCTAssertEqual(lists.components(separatedBy: "<ul>").count - 1, MarkdownHTML.maxNesting)
        XCTAssertLessThan(Date().timeIntervalSince(start), 20, "seconds for about 300 KB of pathological cards")
    }

    /// Raw HTML, script URLs and quotes in the Markdown are text: the only tags are the renderer's own.
    func testNothingInTheMarkdownBecomesMarkup() {
        let card = """
            <script>alert("card")</script>
            # <img src=x onerror=alert(1)>
            [safe](https://huggingface.co/x "title") [bad](javascript:alert(1)) [quote](https://a.b/"onmouseover="x)
            ![logo](https://example.com/logo.png) <b>bold</b> `<i>`
            | <th> | x |
            | --- | --- |
            | <td onclick=y> | ok |
            """
        let html = MarkdownHTML.render(card)
        XCTAssertEqual(html, """
            <p>&lt;script&gt;alert(&quot;card&quot;)&lt;/script&gt;</p>
            <h1>&lt;img src=x onerror=alert(1)&gt;</h1>
            <p><a href="https://huggingface.co/x" rel="noopener noreferrer">safe</a> bad \
            <a href="https://a.b/&quot;onmouseover=&quot;x" rel="noopener noreferrer">quote</a>
            logo &lt;b&gt;bold&lt;/b&gt; <code>&lt;i&gt;</code></p>
            <div class="table"><table>
            <thead>
            <tr><th>&lt;th&gt;</th><th>x</th></tr>
            </thead>
            <tbody>
            <tr><td>&lt;td onclick=y&gt;</td><td>ok</td></tr>
            </tbody>
            </table></div>

            """)
        let tags = Set(html.components(separatedBy: "<").dropFirst().map { String($0.prefix { $0.isLetter || $0.isNumber }) }
                        .filter { !$0.isEmpty })
        XCTAssertTrue(tags.isSubset(of: ["p", "h1", "a", "code", "div", "table", "thead", "tbody", "tr", "th", "td"]),
                      "\(tags)")
    }
}

import XCTest
import Formats

/// `Markup.escape`: the five characters that can end text or a quoted attribute in HTML or XML become entities;
/// nothing else changes.
final class MarkupEscapeTests: XCTestCase {
    func testEscapesTheFiveMarkupCharacters() {
        XCTAssertEqual(Markup.escape(#"<a href="x" title='y'>&amp;</a>"#),
                       "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;")
    }

    func testLeavesEverythingElseAsItIs() {
        let text = "plain text, é, 日本, 👍🏽, tab\t, newline\n, / and \\"
        XCTAssertEqual(Markup.escape(text), text)
        XCTAssertEqual(Markup.escape(""), "")
    }
}

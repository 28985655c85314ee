import Foundation
import XCTest
import Formats

final class JSONQuoteTests: XCTestCase {
    func testEscapes() {
        XCTAssertEqual(JSON.quote(""), #""""#)
        XCTAssertEqual(JSON.quote("plain text"), #""plain text""#)
        XCTAssertEqual(JSON.quote(#"say "hi""#), #""say \"hi\"""#)
        XCTAssertEqual(JSON.quote(#"C:\dir"#), #""C:\\dir""#)
        XCTAssertEqual(JSON.quote("a\nb\rc\td"), #""a\nb\rc\td""#)
        XCTAssertEqual(JSON.quote("\u{0}\u{1}\u{8}\u{c}\u{1b}\u{1f}"), #""\u0000\u0001\u0008\u000c\u001b\u001f""#)
    }

    func testLeavesSlashSpaceDeleteAndNonASCIIAsTheyAre() {
        XCTAssertEqual(JSON.quote("a/b </script>"), #""a/b </script>""#)
        XCTAssertEqual(JSON.quote(" \u{7f}"), "\" \u{7f}\"")
        XCTAssertEqual(JSON.quote("é 日本 🙂 \u{2028}"), "\"é 日本 🙂 \u{2028}\"")
    }

    /// Every quoted string is a JSON string literal that reads back as the original.
    func testRoundTripsThroughAJSONParser() throws {
        var all = ""
        for v in 0..<0x80 { all.unicodeScalars.append(Unicode.Scalar(UInt8(v))) }
        for s in [all, "quote \" backslash \\ newline \n tab \t é", "🙂\u{0}x"] {
            let data = Data(("[" + JSON.quote(s) + "]").utf8)
            let parsed = try JSONSerialization.jsonObject(with: data) as? [String]
            XCTAssertEqual(parsed, [s])
        }
    }
}

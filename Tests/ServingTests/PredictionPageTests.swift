import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import Serving

/// `GET /` from a server in this process: one self-contained HTML document with the form for the model's kind of
/// record, the model card rendered with its markup escaped, the structure figure as a `data:` image, and a
/// Content-Security-Policy that allows exactly the page's own script and style. Reading `ModelPage.card` from a
/// model directory. The page in a real browser: `BrowserPageTests`.
final class PredictionPageTests: ServerTestCase {
    static let card = """
        ---
        license: apache-2.0
        ---
        # Tiny <script>alert("card")</script> model

        | layer | heads |
        | --- | ---: |
        | 0 | 2 |
        """
    static let svg = ##"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40"><rect fill="#0969da"/></svg>"##

    func testPageIsOneSelfContainedDocument() async throws {
        let log = Log()
        let server = try PredictionServer(
            predictor: try ServingFixtures.predictor(.classification(labels: 2)), modelName: "tiny",
            configuration: ServerConfiguration(port: 0, maxBodyBytes: 500),
            page: ModelPage(structureSVG: Self.svg, cardMarkdown: Self.card), logger: log.logger)
        let base = try await start(server)
        let (response, html) = try await exchange("GET", base.appendingPathComponent("/"))
        let http = try XCTUnwrap(response)
        XCTAssertEqual(http.statusCode, 200, html)
        XCTAssertEqual(http.value(forHTTPHeaderField: "Content-Type"), "text/html; charset=utf-8")
        XCTAssertEqual(http.value(forHTTPHeaderField: "X-Content-Type-Options"), "nosniff")
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">"), html)

        // Nothing loaded from elsewhere: no URL but the SVG's namespace, and that only inside the base64 image.
        XCTAssertFalse(html.contains("http://") || html.contains("https://"), "an external reference")
        XCTAssertFalse(html.contains("src=\"/") || html.contains("href=\""), "a reference to another resource")
        let figure = try XCTUnwrap(html.firstMatch(of: #/src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"/#))
        XCTAssertEqual(Data(base64Encoded: String(figure.1)).map { String(decoding: $0, as: UTF8.self) }, Self.svg)

        // The form of a classifier with two token types: a text and a second text; the settings the script reads.
        for id in ["form", "text", "text_pair", "predict", "result", "error"] {
            XCTAssertTrue(html.contains("id=\"\(id)\""), "no #\(id)")
        }
        XCTAssertFalse(html.contains("id=\"question\""))
        XCTAssertTrue(html.contains(#"<script type="application/json" id="settings">{"labels":["LABEL_0","LABEL_1"],"#
                                    + #""max_body_bytes":500,"max_length":16,"pairs":true,"task":"classification"}</script>"#))
        XCTAssertTrue(html.contains("<span>model <b>tiny</b></span> · <span>task <b>classification</b></span> · "
                                    + "<span>labels <b>LABEL_0</b>, <b>LABEL_1</b></span> · <span>at most 16 tokens "
                                    + "per sequence</span> · <span>requests up to 500 bytes</span>"), html)

        // The card: rendered, its script shown as text; the page's own two scripts are the only ones.
        XCTAssertTrue(html.contains("<h1>Tiny &lt;script&gt;alert(&quot;card&quot;)&lt;/script&gt; model</h1>"), html)
        XCTAssertTrue(html.contains("<th>layer</th><th class=\"align-right\">heads</th>"), html)
        XCTAssertTrue(html.contains("<summary>Front matter (YAML)</summary><pre><code>license: apache-2.0</code>"))
        XCTAssertEqual(html.components(separatedBy: "<script").count - 1, 2)

        // The policy allows the inline script and style by their hashes, and nothing else of the kind.
        let policy = try XCTUnwrap(http.value(forHTTPHeaderField: "Content-Security-Policy"))
        let script = try XCTUnwrap(html.firstMatch(of: #/<script>(.*)</script>/#.dotMatchesNewlines()))
        let style = try XCTUnwrap(html.firstMatch(of: #/<style>(.*)</style>/#.dotMatchesNewlines()))
        XCTAssertEqual(policy, "default-src 'none'; script-src '\(PredictionPage.sha256(String(script.1)))'; "
                       + "style-src '\(PredictionPage.sha256(String(style.1)))'; img-src data:; connect-src 'self'; "
                       + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        XCTAssertFalse(html.contains(" style=\""), "an inline style attribute, which the policy blocks")

        // The page is a route of its own in the request log and the metrics.
        let (_, metrics) = try await send("GET", base.appendingPathComponent("metrics"))
        XCTAssertEqual(Self.samples(metrics)[#"cofi_serve_requests_total{route="/",method="GET",status="200"}"#], 1)
        XCTAssertTrue(log.all.map(Self.fields).contains { $0["path"] == "/" && $0["status"] == "200" }, "\(log.all)")
    }

    /// A span model's page asks for a question and a context; with neither figure nor card the page has neither
    /// section; a one-token-type classifier has no second text.
    func testFormFitsTheModel() async throws {
        let span = PredictionPage(health: facts(task: "span", labels: []), acceptsPairs: true, model: ModelPage())
        XCTAssertTrue(span.html.contains("id=\"question\"") && span.html.contains("id=\"context\""))
        XCTAssertFalse(span.html.contains("id=\"text\""))
        XCTAssertFalse(span.html.contains("id=\"structure\"") || span.html.contains("id=\"card\""))
        let single = PredictionPage(health: facts(task: "classification", labels: ["a", "b"]), acceptsPairs: false,
                                    model: ModelPage(title: "A <b>title</b>"))
        XCTAssertTrue(single.html.contains("id=\"text\""))
        XCTAssertFalse(single.html.contains("id=\"text_pair\""))
        XCTAssertTrue(single.html.contains("<title>A &lt;b&gt;title&lt;/b&gt;</title>"))
        XCTAssertEqual([500, 1024, 1536, 1 << 20, 3 << 19].map(PredictionPage.byteSize),
                       ["500 bytes", "1 KiB", "1.5 KiB", "1 MiB", "1.5 MiB"])
    }

    /// `ModelPage.card` reads a model directory's README.md: nil without one, an error naming the file when it is
    /// too large or not UTF-8.
    func testCardIsReadFromTheModelDirectory() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-card-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        XCTAssertNil(try ModelPage.card(in: directory))
        let file = directory.appendingPathComponent("README.md")
        try Data("# Card\n".utf8).write(to: file)
        XCTAssertEqual(try ModelPage.card(in: directory), "# Card\n")
        XCTAssertThrowsError(try ModelPage.card(in: directory, maxBytes: 4)) {
            XCTAssertEqual("\($0)", "\(file.path): the model card is 7 bytes; the page shows one of at most 4 bytes")
        }
        try Data([0x23, 0x20, 0xff, 0xfe]).write(to: file)
        XCTAssertThrowsError(try ModelPage.card(in: directory)) {
            XCTAssertEqual("\($0)", "\(file.path): the model card is not UTF-8 text")
        }
    }

    /// A server's facts, as the page gets them.
    func facts(task: String, labels: [String]) -> HealthReport {
        HealthReport(model: "tiny", task: task, labels: labels, maxLength: 16, maxBatch: 32, maxInputs: 256,
                     maxBodyBytes: 1 << 20, statistics: PredictionBatcher.Statistics())
    }
}

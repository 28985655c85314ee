import Foundation
import XCTest
import Runtime
@testable import Serving

/// The page in a real browser: headless Chromium loads `GET /?text=…` from a server in this process on loopback —
/// the query string fills the form and submits it, as a user's click does — and the test reads the DOM the browser
/// ends with (`--dump-dom`): the label shown is the one `POST /predict` answers for the same text (and pair), a
/// regression model's value is its score, a span model's answer is marked in its context, and errors — a text the model refuses, a body over the server's limit — are
/// shown in words. Skipped with a message when no Chromium is installed (`apt-get install chromium`).
///
/// `COFI_SERVE_SCREENSHOTS=DIR` also saves a screenshot of each page state (`DIR/serve-page-*.png`), to look at.
final class BrowserPageTests: ServerTestCase {
    /// A classifier with known label names, its page with a card and a structure figure.
    func testPageShowsTheLabelThePredictEndpointGives() async throws {
        let browser = try Self.chromium()
        // Seed 4: a model that gives both labels to `ServingFixtures.texts(12)` (5 and 7 of them).
        let predictor = try Predictor(model: ServingFixtures.model(.classification(labels: 2), seed: 4),
                                      tokenizer: ServingFixtures.tokenizer, labels: ["negative", "positive"], threads: 1)
        let server = try PredictionServer(
            predictor: predictor, modelName: "tiny", configuration: ServerConfiguration(port: 0),
            page: ModelPage(structureSVG: Self.structureSVG, cardMarkdown: Self.card), logger: Log().logger)
        let base = try await start(server)
        // A text for each label, as POST /predict answers them.
        let texts = ServingFixtures.texts(12)
        let records = texts.map { #"{"text": "\#($0)"}"# }.joined(separator: ", ")
        let (status, body) = try await send("POST", base.appendingPathComponent("predict"),
                                            #"{"inputs": [\#(records)]}"#)
        XCTAssertEqual(status, 200, body)
        let labels = try XCTUnwrap(try object(body)["outputs"] as? [[String: Any]], body).map { $0["label"] as? String }
        var textOf: [String: String] = [:]
        for (text, label) in zip(texts, labels) where textOf[label ?? ""] == nil { textOf[label ?? ""] = text }
        XCTAssertEqual(Set(textOf.keys), ["negative", "positive"], "the tiny model gives both labels to these texts")
        for (expected, text) in textOf.sorted(by: { $0.key < $1.key }) {
            let dom = try await browser.dom(base, query: ["text": text], screenshot: "classification-\(expected)")
            XCTAssertEqual(Self.state(dom), "done", dom)
            XCTAssertEqual(Self.text(of: "label", in: dom), expected, dom)
            XCTAssertEqual(dom.components(separatedBy: "class=\"percent\"").count - 1, 2, "a bar per class: \(dom)")
            XCTAssertNotNil(Self.text(of: "elapsed", in: dom)?.firstMatch(of: #/Answered in \d+ ms/#), dom)
            XCTAssertTrue(dom.contains("<title>cofi serve — tiny</title>"), "the figure's script ran: \(dom)")
        }
        // A pair: the second text goes with the first.
        let (first, second) = (texts[0], texts[5])
        let (pairStatus, pairBody) = try await send("POST", base.appendingPathComponent("predict"),
                                                    #"{"text": "\#(first)", "text_pair": "\#(second)"}"#)
        XCTAssertEqual(pairStatus, 200, pairBody)
        let dom = try await browser.dom(base, query: ["text": first, "text_pair": second], screenshot: "pair")
        XCTAssertEqual(Self.text(of: "label", in: dom), try object(pairBody)["label"] as? String, dom)
        XCTAssertTrue(dom.contains("<details id=\"pair\" open=\"\">"), "the second text is shown: \(dom)")
    }

    /// A regression model: the value shown is `POST /predict`'s score.
    func testRegressionPageShowsTheValue() async throws {
        let browser = try Self.chromium()
        let server = try PredictionServer(predictor: try ServingFixtures.predictor(.regression),
                                          modelName: "tiny-sts", configuration: ServerConfiguration(port: 0),
                                          logger: Log().logger)
        let base = try await start(server)
        let text = ServingFixtures.texts(3)[2]
        let (status, body) = try await send("POST", base.appendingPathComponent("predict"), #"{"text": "\#(text)"}"#)
        XCTAssertEqual(status, 200, body)
        let score = try XCTUnwrap(try object(body)["score"] as? Double, body)
        let dom = try await browser.dom(base, query: ["text": text], screenshot: "regression")
        XCTAssertEqual(Self.state(dom), "done", dom)
        XCTAssertEqual(Self.text(of: "value", in: dom), String(format: "%.4f", score), dom)
    }

    /// A span model: the answer shown is the one `POST /predict` gives, and it is the marked part of the context.
    func testSpanPageMarksTheAnswerInTheContext() async throws {
        let browser = try Self.chromium()
        let server = try PredictionServer(predictor: try ServingFixtures.predictor(.span), modelName: "tiny-qa",
                                          configuration: ServerConfiguration(port: 0), logger: Log().logger)
        let base = try await start(server)
        let (question, context) = ("who played", "the actors played well and the story was fun")
        let (status, body) = try await send("POST", base.appendingPathComponent("predict"),
                                            #"{"question": "\#(question)", "context": "\#(context)"}"#)
        XCTAssertEqual(status, 200, body)
        let answer = try XCTUnwrap(try object(body)["answer"] as? String, body)
        let dom = try await browser.dom(base, query: ["question": question, "context": context], screenshot: "span")
        XCTAssertEqual(Self.state(dom), "done", dom)
        XCTAssertEqual(Self.text(of: "answer", in: dom), answer.isEmpty ? "(no answer in the context)" : answer, dom)
        if !answer.isEmpty {
            XCTAssertTrue(dom.contains("<mark>\(Self.escaped(answer))</mark>"), dom)
        }
    }

    /// A text the model refuses (blank) and a body over `maxBodyBytes` (413): each shown in words, with the
    /// server's message, and no label.
    func testPageShowsErrorsInWords() async throws {
        let browser = try Self.chromium()
        let server = try classifierServer(ServerConfiguration(port: 0, maxBodyBytes: 200), log: Log())
        let base = try await start(server)

        var dom = try await browser.dom(base, query: ["text": "   "], screenshot: "error-empty")
        XCTAssertEqual(Self.state(dom), "error", dom)
        XCTAssertEqual(Self.text(of: "error-title", in: dom), "The model could not answer this input.", dom)
        XCTAssertEqual(Self.text(of: "error-detail", in: dom), "The server says: the text is empty", dom)
        XCTAssertNil(Self.text(of: "label", in: dom), dom)

        dom = try await browser.dom(base, query: ["text": String(repeating: "the film was good ", count: 20)],
                              screenshot: "error-413")
        XCTAssertEqual(Self.state(dom), "error", dom)
        XCTAssertEqual(Self.text(of: "error-title", in: dom),
                       "The text is larger than the server accepts (this request is 371 bytes; the server takes at "
                       + "most 200) — HTTP 413 Content Too Large.", dom)
        XCTAssertEqual(Self.text(of: "error-detail", in: dom),
                       "The server says: the request body is larger than 200 bytes (cofi serve --max-body-bytes); "
                       + "send fewer or shorter records per request", dom)
        XCTAssertNil(Self.text(of: "label", in: dom), dom)

        // No server behind the page (opened from a file): the fetch fails, and the page says so.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-page-\(UUID()).html")
        try Data(PredictionPage(health: server.health, acceptsPairs: true, model: ModelPage()).html.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        dom = try await browser.dom(file, query: ["text": "the film"], screenshot: "error-network")
        XCTAssertEqual(Self.state(dom), "error", dom)
        XCTAssertEqual(Self.text(of: "error-title", in: dom), "Could not reach the server.", dom)
        XCTAssertTrue(Self.text(of: "error-detail", in: dom)?.hasPrefix("The request failed before an answer came (")
                      == true, dom)
    }

    // MARK: The browser

    /// A headless Chromium run by path.
    struct Chromium {
        let path: String

        /// Loads `base` (`/` of a server, or a file) with `query`, lets the page run (its fetch included) and returns the DOM it ends with;
        /// with `COFI_SERVE_SCREENSHOTS` set, also saves a screenshot named after `screenshot`. Each run has a hard
        /// limit of 20 s: a hung browser fails the test, never hangs the suite. The browser is waited for on a
        /// dispatch thread, not one of the few the server's tasks run on.
        func dom(_ base: URL, query: [String: String], screenshot: String) async throws -> String {
            try await withCheckedThrowingContinuation { c in
                DispatchQueue.global().async {
                    c.resume(with: Result { try self.loadBlocking(base, query: query, screenshot: screenshot) })
                }
            }
        }

        func loadBlocking(_ base: URL, query: [String: String], screenshot: String) throws -> String {
            let page = base.isFileURL ? base : base.appendingPathComponent("/")
            var components = URLComponents(url: page, resolvingAgainstBaseURL: false)!
            components.queryItems = query.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
            // `+` is a space in a query string; URLComponents leaves it as it is.
            components.percentEncodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
            let url = components.url!.absoluteString
            let dom = try run(["--dump-dom", url])
            if let directory = ProcessInfo.processInfo.environment["COFI_SERVE_SCREENSHOTS"] {
                let file = URL(fileURLWithPath: directory).appendingPathComponent("serve-page-\(screenshot).png")
                _ = try run(["--screenshot=\(file.path)", "--window-size=1000,1400", "--hide-scrollbars", url])
            }
            return dom
        }

        /// Runs the browser with `arguments` after the headless ones, in a fresh profile; its standard output.
        func run(_ arguments: [String]) throws -> String {
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-chromium-\(UUID())")
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: scratch) }
            let output = scratch.appendingPathComponent("stdout")
            let errors = scratch.appendingPathComponent("stderr")
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: path)
            // --no-sandbox: Chromium's sandbox refuses to run as root (CI containers); --virtual-time-budget: the
            // page's timers and its fetch run before the DOM is dumped, without waiting in real time.
            process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                 "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                                 "--no-proxy-server", "--user-data-dir=\(scratch.appendingPathComponent("profile").path)",
                                 "--virtual-time-budget=10000"] + arguments
            process.standardOutput = try FileHandle(forWritingTo: output)
            process.standardError = try FileHandle(forWritingTo: errors)
            let exited = DispatchSemaphore(value: 0)
            process.terminationHandler = { _ in exited.signal() }
            try process.run()
            if exited.wait(timeout: .now() + 20) == .timedOut {
                process.terminate()
                if exited.wait(timeout: .now() + 3) == .timedOut { kill(process.processIdentifier, SIGKILL) }
                throw ServerTestError(description: "Chromium did not finish within 20 s: \(arguments)\n"
                                      + Self.tail(errors))
            }
            guard process.terminationStatus == 0 else {
                throw ServerTestError(description: "Chromium exited with status \(process.terminationStatus): "
                                      + "\(arguments)\n" + Self.tail(errors))
            }
            return String(decoding: try Data(contentsOf: output), as: UTF8.self)
        }

        /// The last lines the browser wrote to its standard error.
        static func tail(_ file: URL) -> String {
            let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").suffix(15).joined(separator: "\n")
        }
    }

    /// The browser named by `CHROMIUM`, else the first of chromium, chromium-browser, google-chrome and
    /// google-chrome-stable on PATH; skips the test when there is none.
    static func chromium() throws -> Chromium {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["CHROMIUM"], !path.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw ServerTestError(description: "CHROMIUM is \(path), which is not an executable file")
            }
            return Chromium(path: path)
        }
        let directories = (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
            for directory in directories {
                let path = "\(directory)/\(name)"
                if FileManager.default.isExecutableFile(atPath: path) { return Chromium(path: path) }
            }
        }
        throw XCTSkip("no Chromium to test the page in a browser: install it (Debian: apt-get install chromium) or "
                      + "set CHROMIUM to its path")
    }

    // MARK: Reading the DOM

    /// The text of the element with `id` (entities decoded; no child elements), or nil when there is none.
    static func text(of id: String, in dom: String) -> String? {
        guard let range = dom.range(of: "id=\"\(id)\""), let open = dom[range.upperBound...].firstIndex(of: ">"),
              let close = dom[open...].firstIndex(of: "<") else { return nil }
        return unescaped(String(dom[dom.index(after: open)..<close]))
    }

    /// The page's `data-state`: idle, busy, done or error.
    static func state(_ dom: String) -> String? {
        dom.firstMatch(of: #/<body data-state="([a-z]+)"/#).map { String($0.1) }
    }

    static func unescaped(_ html: String) -> String {
        html.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&nbsp;", with: "\u{a0}").replacingOccurrences(of: "&amp;", with: "&")
    }

    /// Text as the browser serializes it between tags.
    static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\u{a0}", with: "&nbsp;")
    }

    // MARK: Fixtures

    static let card = """
        ---
        license: apache-2.0
        tags: [cofi, pruned]
        ---
        # tiny — a pruned classifier

        Pruned with **CoFi** to `95%` sparsity; the kept structure is in the figure above.

        | layer | heads kept | FFN kept |
        | --- | ---: | ---: |
        | 0 | 2 of 2 | 24 of 24 |
        | 1 | 1 of 2 | 9 of 24 |

        ```sh
        cofi serve --model runs/prune95/final
        ```
        """

    /// A stand-in for the structure figure (its writer is issue 18's other part): a bar per layer.
    static let structureSVG = """
        <svg xmlns="http://www.w3.org/2000/svg" width="480" height="120" viewBox="0 0 480 120" \
        font-family="DejaVu Sans, sans-serif" font-size="12">
        <rect width="480" height="120" fill="white"/>
        <text x="10" y="20">layer 0</text><rect x="80" y="8" width="360" height="16" fill="#0969da"/>
        <text x="10" y="50">layer 1</text><rect x="80" y="38" width="150" height="16" fill="#0969da"/>
        <text x="10" y="80">heads</text><rect x="80" y="68" width="240" height="16" fill="#1f883d"/>
        <script>document.title = "svg script ran"</script>
        </svg>
        """
}

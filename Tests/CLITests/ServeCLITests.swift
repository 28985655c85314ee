import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Runtime
import XCTest

/// `cofi serve` as a user runs it, on tiny random models (a classifier, a span model): started on a free loopback
/// port, it answers concurrent requests as `cofi predict` answers the same records, gathers them into shared
/// batches, answers bad requests with 4xx and JSON errors while staying up, and stops cleanly on SIGTERM.
final class ServeCLITests: XCTestCase {
    var work: URL!
    var classifier: URL { work.appendingPathComponent("classifier") }

    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-serve-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        try TinyModels.write(classifier, task: .classification(labels: 2), seed: 3)
    }

    override func tearDownWithError() throws {
        if let work { try? FileManager.default.removeItem(at: work) }
    }

    // MARK: - Helpers

    /// A running `cofi serve`: its process, its URL (from the "listening on" line) and what it logged.
    final class Server: @unchecked Sendable {
        let process: Process
        let url: URL
        private let lock = NSLock()
        private var errData = Data()
        private let errDone = DispatchSemaphore(value: 0)

        init(process: Process, url: URL, stderr: Pipe) {
            self.process = process
            self.url = url
            Thread {
                while true {
                    let chunk = stderr.fileHandleForReading.availableData
                    if chunk.isEmpty { break }
                    self.lock.lock()
                    self.errData += chunk
                    self.lock.unlock()
                }
                self.errDone.signal()
            }.start()
        }

        /// stderr so far (all of it once the process has ended and `stop()` returned).
        var stderr: String {
            lock.lock()
            defer { lock.unlock() }
            return String(decoding: errData, as: UTF8.self)
        }

        /// SIGTERM, then waits for the exit (and the end of stderr); returns the exit status.
        @discardableResult
        func stop() -> Int32 {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            _ = errDone.wait(timeout: .now() + 10)
            return process.terminationStatus
        }
    }

    /// Starts `cofi serve --model MODEL (default: the classifier) --port 0 extra…`, waits (up to 2 minutes) for its "listening on" line,
    /// and makes sure the process is stopped when the test ends, whatever happens.
    func startServer(_ extra: [String] = [], model: URL? = nil, file: StaticString = #filePath,
                     line: UInt = #line) throws -> Server {
        let p = Process()
        p.executableURL = productsDirectory.appendingPathComponent("cofi")
        p.arguments = ["serve", "--model", (model ?? classifier).path, "--port", "0"] + extra
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        addTeardownBlock {
            if p.isRunning {
                p.terminate()
                p.waitUntilExit()
            }
        }
        // The first stdout line, read on another thread so that a server that never prints cannot hang the test.
        final class Box: @unchecked Sendable { var line: String? }
        let box = Box()
        let read = DispatchSemaphore(value: 0)
        Thread {
            var bytes = Data()
            while !bytes.contains(UInt8(ascii: "\n")) {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                bytes += chunk
            }
            box.line = String(decoding: bytes, as: UTF8.self)
            read.signal()
        }.start()
        let server: Server
        if read.wait(timeout: .now() + 120) == .timedOut {
            server = Server(process: p, url: URL(string: "http://127.0.0.1:1")!, stderr: err)
            server.stop()
            XCTFail("no \"listening on\" line within 2 minutes; stderr: \(server.stderr)", file: file, line: line)
            throw ServeTestError("cofi serve did not start")
        }
        let first = box.line ?? ""
        let prefix = "listening on http://127.0.0.1:"
        guard first.hasPrefix(prefix), first.hasSuffix("\n"),
              let port = Int(first.dropFirst(prefix.count).dropLast()), port > 0 else {
            let s = Server(process: p, url: URL(string: "http://127.0.0.1:1")!, stderr: err)
            s.stop()
            XCTFail("expected \"\(prefix)PORT\", got \(first.debugDescription); stderr: \(s.stderr)", file: file, line: line)
            throw ServeTestError("cofi serve did not start")
        }
        return Server(process: p, url: URL(string: "http://127.0.0.1:\(port)")!, stderr: err)
    }

    /// One HTTP exchange; returns (status, body). `streamed`: the body goes as a stream (chunked, no
    /// Content-Length). Throws on a transport error.
    func send(_ method: String, _ url: URL, _ body: Data? = nil, streamed: Bool = false,
              session: URLSession = .shared) throws -> (Int, Data) {
        var request = URLRequest(url: url, timeoutInterval: 120)
        request.httpMethod = method
        if let body {
            if streamed { request.httpBodyStream = InputStream(data: body) } else { request.httpBody = body }
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        final class Box: @unchecked Sendable { var result: Result<(Int, Data), Error>? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        session.dataTask(with: request) { data, response, error in
            if let error {
                box.result = .failure(error)
            } else {
                box.result = .success(((response as? HTTPURLResponse)?.statusCode ?? -1, data ?? Data()))
            }
            done.signal()
        }.resume()
        guard done.wait(timeout: .now() + 180) == .success, let result = box.result else {
            throw ServeTestError("no answer from \(method) \(url.path) within 3 minutes")
        }
        return try result.get()
    }

    func object(_ data: Data, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], String(decoding: data, as: UTF8.self),
                      file: file, line: line)
    }

    /// An answer object equals `cofi predict`'s line for the same record: the same keys, label, answer span, id,
    /// truncation and error (after the locator, "line N: " there and "inputs[K]: " here), probabilities and scores
    /// equal to float rounding (the engine's sums may round differently in another batch).
    func assertSame(_ answer: [String: Any], _ expected: [String: Any], _ what: String,
                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Set(answer.keys), Set(expected.keys), what, file: file, line: line)
        XCTAssertEqual(answer["label"] as? String, expected["label"] as? String, what, file: file, line: line)
        XCTAssertEqual(answer["answer"] as? String, expected["answer"] as? String, what, file: file, line: line)
        XCTAssertEqual(answer["start"] as? Int, expected["start"] as? Int, what, file: file, line: line)
        XCTAssertEqual(answer["end"] as? Int, expected["end"] as? Int, what, file: file, line: line)
        XCTAssertEqual(answer["score"] as? Double ?? -1, expected["score"] as? Double ?? -1, accuracy: 1e-6, what,
                       file: file, line: line)
        XCTAssertEqual(answer["truncated"] as? Bool, expected["truncated"] as? Bool, what, file: file, line: line)
        XCTAssertEqual((answer["id"] as? NSObject)?.description, (expected["id"] as? NSObject)?.description, what,
                       file: file, line: line)
        func message(_ o: [String: Any], without locator: String) -> String? {
            guard let e = o["error"] as? String else { return nil }
            guard let r = e.range(of: locator, options: .regularExpression) else { return e }
            return String(e[r.upperBound...])
        }
        XCTAssertEqual(message(answer, without: #"^inputs\[[0-9]+\]: "#), message(expected, without: #"^line [0-9]+: "#),
                       what, file: file, line: line)
        let p = answer["probabilities"] as? [String: Double] ?? [:], q = expected["probabilities"] as? [String: Double] ?? [:]
        XCTAssertEqual(Set(p.keys), Set(q.keys), what, file: file, line: line)
        for (name, value) in q { XCTAssertEqual(p[name] ?? -1, value, accuracy: 1e-6, what, file: file, line: line) }
    }

    // MARK: - Tests

    func testConcurrentRequestsEqualPredictAndShareBatches() throws {
        let long = Array(repeating: "the film was good and fun", count: 12).joined(separator: " ")
        var records: [String] = [
            #"{"id": "a", "text": "the film was good"}"#,
            #"{"text": "awful"}"#,
            #"{"id": 3, "text": "the plot", "text_pair": "was dull"}"#,
            #"{"text": "a great story and a good plot"}"#,
            #"{"id": 5, "text": "\#(long)"}"#,                       // truncated
            #"{"id": 6, "text": "   "}"#,                            // the predictor's error: empty text
            #"{"id": 7, "text_pair": "fun"}"#,                       // not a record
            #"{"id": 8, "question": "who directed it", "context": "ann lee"}"#,  // wrong kind for a classifier
            #"{"text": "ann lee directed it in paris", "extra": [1, 2]}"#,
            #"{"id": 10.5, "text": "bad", "text_pair": "the story was great"}"#,
        ]
        let words = TinyModels.words
        for k in 0 ..< 14 {  // more texts of different lengths
            let text = (0 ... (k % 7 + 1)).map { words[($0 * 5 + k * 3) % words.count] }.joined(separator: " ")
            records.append(#"{"id": "t\#(k)", "text": "\#(text)"}"#)
        }
        let (status, stdout, stderr) = try runCofi(["predict", "--model", classifier.path, "--format", "jsonl"],
                                                   input: Data((records.joined(separator: "\n") + "\n").utf8))
        XCTAssertEqual(status, 0, stderr)
        let expected = try stdout.split(separator: "\n").map { try object(Data($0.utf8)) }
        XCTAssertEqual(expected.count, records.count, stdout)
        XCTAssertNotNil(expected[4]["truncated"], "the long text must be truncated: \(stdout)")
        XCTAssertGreaterThan(Set(expected.compactMap { ($0["probabilities"] as? [String: Double])?["positive"] }).count, 5,
                             "the random model must tell inputs apart")

        let server = try startServer(["--max-wait-ms", "300", "--max-batch", "64"])
        let (_, before) = try send("GET", server.url.appendingPathComponent("health"))
        let statsBefore = try XCTUnwrap(try object(before)["statistics"] as? [String: Int])

        // 16 requests at once from 16 threads: singles (every record that is one) and {"inputs": […]} of 1–4 records.
        let singles = records.indices.filter { $0 != 6 }
        let requests: [[Int]] = (0 ..< 16).map { r in
            r % 2 == 0 ? [singles[(r / 2 * 3) % singles.count]]
                       : (0 ..< (r % 4 + 1)).map { (r * 5 + $0 * 7 + 1) % records.count }
        }
        XCTAssertTrue(requests.contains { $0.contains(6) }, "a bad record inside a batch must be among the requests")
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 16
        let session = URLSession(configuration: configuration)
        final class Answers: @unchecked Sendable {
            let lock = NSLock()
            var byRequest: [Int: Result<(Int, Data), Error>] = [:]
        }
        let answers = Answers()
        let start = DispatchSemaphore(value: 0)
        let finished = DispatchGroup()
        for (r, indices) in requests.enumerated() {
            let body = indices.count == 1 && r % 2 == 0
                ? records[indices[0]]
                : #"{"inputs": ["# + indices.map { records[$0] }.joined(separator: ", ") + "]}"
            finished.enter()
            Thread {
                start.wait()
                let result = Result { try self.send("POST", server.url.appendingPathComponent("predict"), Data(body.utf8),
                                                    session: session) }
                answers.lock.lock()
                answers.byRequest[r] = result
                answers.lock.unlock()
                finished.leave()
            }.start()
        }
        for _ in requests { start.signal() }
        XCTAssertEqual(finished.wait(timeout: .now() + 300), .success, "the requests did not all finish")

        for (r, indices) in requests.enumerated() {
            let (code, data) = try XCTUnwrap(answers.byRequest[r]).get()
            XCTAssertEqual(code, 200, String(decoding: data, as: UTF8.self))
            let body = try object(data)
            if r % 2 == 0 {
                assertSame(body, expected[indices[0]], "request \(r): \(records[indices[0]])")
            } else {
                let outputs = try XCTUnwrap(body["outputs"] as? [[String: Any]], "request \(r)")
                XCTAssertEqual(outputs.count, indices.count, "request \(r)")
                for (k, (output, i)) in zip(outputs, indices).enumerated() {
                    assertSame(output, expected[i], "request \(r), inputs[\(k)]: \(records[i])")
                    if let e = output["error"] as? String { XCTAssertTrue(e.hasPrefix("inputs[\(k)]: "), e) }
                }
            }
        }

        // The 16 requests were gathered into fewer engine batches than requests.
        let (_, after) = try send("GET", server.url.appendingPathComponent("health"))
        let stats = try XCTUnwrap(try object(after)["statistics"] as? [String: Int])
        let recordCount = requests.map { $0.filter { $0 != 6 }.count }.reduce(0, +)
        XCTAssertEqual(stats["requests"]! - statsBefore["requests"]!, requests.count)
        XCTAssertEqual(stats["records"]! - statsBefore["records"]!, recordCount)
        XCTAssertLessThan(stats["batches"]! - statsBefore["batches"]!, requests.count, "\(stats)")
        XCTAssertGreaterThan(stats["largest_batch"]!, 1, "\(stats)")

        XCTAssertEqual(server.stop(), 0, server.stderr)
        XCTAssertEqual(server.stderr.components(separatedBy: "msg=request method=POST path=/predict status=200 ").count - 1,
                       requests.count, server.stderr)
    }

    func testBadRequestsGetJSONErrorsAndTheServerStaysUp() throws {
        let server = try startServer(["--max-body-bytes", "2048", "--max-inputs", "4", "--max-wait-ms", "0"])
        let predict = server.url.appendingPathComponent("predict")
        func expectError(_ method: String, _ url: URL, _ body: String?, streamed: Bool = false, status: Int,
                         _ fragment: String, line: UInt = #line) throws {
            let (code, data) = try send(method, url, body.map { Data($0.utf8) }, streamed: streamed)
            XCTAssertEqual(code, status, String(decoding: data, as: UTF8.self), line: line)
            let o = try object(data, line: line)
            XCTAssertEqual(Array(o.keys), ["error"], line: line)
            let message = o["error"] as? String ?? ""
            XCTAssertTrue(message.contains(fragment), "\(message) does not say \(fragment)", line: line)
        }
        func expectAnswer(line: UInt = #line) throws {
            let (code, data) = try send("POST", predict, Data(#"{"id": 1, "text": "the film was good"}"#.utf8))
            XCTAssertEqual(code, 200, line: line)
            let o = try object(data, line: line)
            XCTAssertEqual(o["id"] as? Int, 1, line: line)
            XCTAssertNotNil(o["label"], String(decoding: data, as: UTF8.self), line: line)
        }

        let (code, data) = try send("GET", server.url.appendingPathComponent("health"))
        XCTAssertEqual(code, 200)
        let health = try object(data)
        XCTAssertEqual(health["status"] as? String, "ok")
        XCTAssertEqual(health["model"] as? String, "classifier")
        XCTAssertEqual(health["task"] as? String, "classification")
        XCTAssertEqual(health["labels"] as? [String], ["negative", "positive"])
        XCTAssertEqual(health["max_length"] as? Int, 32)
        XCTAssertEqual(health["max_inputs"] as? Int, 4)
        XCTAssertEqual(health["max_body_bytes"] as? Int, 2048)

        // Too large by its Content-Length, and too large as it is read (a chunked body has no length).
        let large = #"{"text": ""# + String(repeating: "the film ", count: 500) + #""}"#
        try expectError("POST", predict, large, status: 413, "larger than 2048 bytes")
        try expectAnswer()
        try expectError("POST", predict, large, streamed: true, status: 413, "larger than 2048 bytes")
        try expectAnswer()
        try expectError("POST", predict, #"{"text": "the film"#, status: 400, "malformed JSON")
        try expectError("POST", predict, "", status: 400, "empty body")
        try expectError("POST", predict, "[1, 2]", status: 400, "a JSON array; expected a record")
        try expectError("POST", predict, #"{"inputs": "the film"}"#, status: 400, "\"inputs\" is a string")
        try expectError("POST", predict, #"{"txt": "the film"}"#, status: 400, "no \"text\" or \"question\" key")
        try expectError("POST", predict, #"{"text": 3}"#, status: 400, "\"text\" is a number; expected a string")
        let five = #"{"inputs": ["# + Array(repeating: #"{"text": "fun"}"#, count: 5).joined(separator: ",") + "]}"
        try expectError("POST", predict, five, status: 413, "5 inputs; at most 4")
        try expectError("GET", server.url.appendingPathComponent("nope"), nil, status: 404, "no route GET /nope")
        try expectError("GET", predict, nil, status: 404,
                        "expected GET / (the page), POST /predict, GET /health or GET /metrics")
        try expectAnswer()
        // A record the predictor refuses is an answer, not a bad request.
        let (emptyCode, emptyData) = try send("POST", predict, Data(#"{"id": "e", "text": " "}"#.utf8))
        XCTAssertEqual(emptyCode, 200)
        XCTAssertEqual(String(decoding: emptyData, as: UTF8.self), #"{"error":"the text is empty","id":"e"}"#)

        // A second server on the same port says so and exits.
        let (busy, _, busyError) = try runCofi(["serve", "--model", classifier.path, "--port", "\(server.url.port!)"])
        XCTAssertNotEqual(busy, 0)
        XCTAssertTrue(busyError.contains("cannot serve on 127.0.0.1:\(server.url.port!)"), busyError)
        try expectAnswer()

        XCTAssertEqual(server.stop(), 0, server.stderr)
        // logfmt lines: the start, each request (method, path, status, records, latency, an error's message), the stop.
        for logged in ["level=info msg=serving ", " model=classifier ", " task=classification\n",
                       " labels=negative,positive ", "msg=request method=GET path=/health status=200 latency_ms=",
                       "level=warning msg=request method=POST path=/predict status=413 latency_ms=",
                       "level=warning msg=request method=POST path=/predict status=400 latency_ms=",
                       "msg=request method=GET path=/nope status=404 latency_ms=",
                       "msg=request method=POST path=/predict status=200 inputs=1 latency_ms=",
                       #"error="5 inputs; at most 4 per request (cofi serve --max-inputs)"#,
                       "level=info msg=stopped"] {
            XCTAssertTrue(server.stderr.contains(logged), "stderr lacks \(logged): \(server.stderr)")
        }
        for line in server.stderr.split(separator: "\n") {
            XCTAssertTrue(line.hasPrefix("ts=") && line.contains(" level=") && line.contains(" msg="),
                          "not a logfmt line: \(line)")
        }
    }

    func testQuestionAnsweringModelAnswersAsPredict() throws {
        let qa = work.appendingPathComponent("qa")
        try TinyModels.write(qa, task: .span, seed: 4)
        let context = "the film was made in paris . ann lee directed it . the story was fun and the plot was good ."
        let records = [
            #"{"id": 1, "question": "who directed it", "context": "\#(context)"}"#,
            #"{"id": 2, "question": "where was the film made", "context": "\#(context)"}"#,
            #"{"question": "what was fun", "context": "the story was fun"}"#,
            #"{"id": 4, "text": "the film"}"#,  // wrong kind for a span model
            #"{"question": "who directed it"}"#,  // not a record
        ]
        let options = ["--max-length", "16", "--doc-stride", "4"]  // long contexts: several windows each
        let (status, stdout, stderr) = try runCofi(["predict", "--model", qa.path, "--format", "jsonl"] + options,
                                                   input: Data((records.joined(separator: "\n") + "\n").utf8))
        XCTAssertEqual(status, 0, stderr)
        let expected = try stdout.split(separator: "\n").map { try object(Data($0.utf8)) }
        XCTAssertEqual(expected.count, records.count, stdout)
        XCTAssertNotNil(expected[0]["answer"], stdout)

        let server = try startServer(options, model: qa)
        let (code, data) = try send("POST", server.url.appendingPathComponent("predict"),
                                    Data((#"{"inputs": ["# + records.joined(separator: ",") + "]}").utf8))
        XCTAssertEqual(code, 200, String(decoding: data, as: UTF8.self))
        let outputs = try XCTUnwrap(try object(data)["outputs"] as? [[String: Any]])
        XCTAssertEqual(outputs.count, records.count)
        for (k, (output, e)) in zip(outputs, expected).enumerated() { assertSame(output, e, "inputs[\(k)]: \(records[k])") }
        let (single, singleData) = try send("POST", server.url.appendingPathComponent("predict"), Data(records[1].utf8))
        XCTAssertEqual(single, 200)
        assertSame(try object(singleData), expected[1], records[1])
        let (_, healthData) = try send("GET", server.url.appendingPathComponent("health"))
        let health = try object(healthData)
        XCTAssertEqual(health["task"] as? String, "span")
        XCTAssertEqual(health["labels"] as? [String], [])
        XCTAssertEqual(health["max_length"] as? Int, 16)
        XCTAssertEqual(server.stop(), 0, server.stderr)
    }

    /// `GET /` is the page, with the model directory's README.md as its card; a card over 1 MiB is left out with a
    /// warning and the server runs.
    func testPageShowsTheModelCard() throws {
        let card = classifier.appendingPathComponent("README.md")
        try Data("# Tiny classifier\n\nA <b>random</b> model.\n".utf8).write(to: card)
        var server = try startServer()
        var (code, data) = try send("GET", server.url.appendingPathComponent("/"))
        var page = String(decoding: data, as: UTF8.self)
        XCTAssertEqual(code, 200, page)
        XCTAssertTrue(page.hasPrefix("<!DOCTYPE html>"), page)
        XCTAssertTrue(page.contains("<h1>Tiny classifier</h1>\n<p>A &lt;b&gt;random&lt;/b&gt; model.</p>"), page)
        XCTAssertTrue(page.contains("id=\"text\""), page)
        XCTAssertEqual(server.stop(), 0, server.stderr)
        XCTAssertFalse(server.stderr.contains("level=warning"), server.stderr)

        try Data(repeating: 0x61, count: (1 << 20) + 1).write(to: card)
        server = try startServer()
        (code, data) = try send("GET", server.url.appendingPathComponent("/"))
        page = String(decoding: data, as: UTF8.self)
        XCTAssertEqual(code, 200, page)
        XCTAssertFalse(page.contains("id=\"card\""), "the card is shown")
        XCTAssertEqual(server.stop(), 0, server.stderr)
        XCTAssertTrue(server.stderr.contains("level=warning msg=\"the model card is not shown on the page\" "
                                             + "error=\"\(card.path): the model card is 1048577 bytes; the page shows "
                                             + "one of at most 1048576 bytes\""), server.stderr)
    }

    /// The limits' flags reach the server (its start line) and /metrics answers in the Prometheus text format.
    func testLimitsFlagsAndMetrics() throws {
        let server = try startServer(["--read-timeout-ms", "300", "--idle-timeout-s", "2", "--max-connections", "8"])
        let (code, data) = try send("GET", server.url.appendingPathComponent("metrics"))
        XCTAssertEqual(code, 200)
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertTrue(text.contains("cofi_serve_connections_open 1"), text)
        XCTAssertTrue(text.contains(#"cofi_serve_connections_total{outcome="refused"} 0"#), text)
        XCTAssertEqual(server.stop(), 0, server.stderr)
        for logged in [" read_timeout_ms=300", " idle_timeout_s=2.0 ", " max_connections=8 "] {
            XCTAssertTrue(server.stderr.contains(logged), "stderr lacks \(logged): \(server.stderr)")
        }
    }

    /// A model whose id2label names two classes alike: cofi serve says so and exits before it listens (it used to
    /// listen and crash on the first request).
    func testModelWithDuplicateLabelNamesIsRefusedBeforeListening() throws {
        let config = classifier.appendingPathComponent("config.json")
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: config)) as? [String: Any])
        json["id2label"] = ["0": "positive", "1": "positive"]
        json["label2id"] = nil
        try JSONSerialization.data(withJSONObject: json).write(to: config)
        let p = Process()
        p.executableURL = productsDirectory.appendingPathComponent("cofi")
        p.arguments = ["serve", "--model", classifier.path, "--port", "0"]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let exited = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in exited.signal() }
        try p.run()
        if exited.wait(timeout: .now() + 60) == .timedOut {
            p.terminate()
            p.waitUntilExit()
            return XCTFail("cofi serve still runs after 60 s: \(String(decoding: out.fileHandleForReading.availableData, as: UTF8.self))")
        }
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationReason, .exit, "not an exit: \(stderr)")
        XCTAssertNotEqual(p.terminationStatus, 0, stderr)
        XCTAssertEqual(stdout, "", "it must not listen")
        XCTAssertTrue(stderr.contains("positive") && stderr.lowercased().contains("id2label"), stderr)
    }

    func testModelDirectoryErrorsAndBadOptions() throws {
        let (status, _, stderr) = try runCofi(["serve", "--model", work.appendingPathComponent("missing").path])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(stderr.contains("no such directory"), stderr)
        let (s2, _, e2) = try runCofi(["serve", "--model", classifier.path, "--max-batch", "0"])
        XCTAssertNotEqual(s2, 0)
        XCTAssertTrue(e2.contains("--max-batch is 0"), e2)
        for (flag, value) in [("--read-timeout-ms", "0"), ("--idle-timeout-s", "0"), ("--max-connections", "0")] {
            let (s3, _, e3) = try runCofi(["serve", "--model", classifier.path, flag, value])
            XCTAssertNotEqual(s3, 0)
            XCTAssertTrue(e3.contains("\(flag) is \(value)"), e3)
        }
    }
}

/// A failure of the test's own machinery (no answer, no server), thrown so that the test fails.
struct ServeTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import Runtime
import Tensor
@testable import Serving

/// `PredictionServer` in this process on a free loopback port, with a tiny random classifier: `/health`,
/// `/predict` with one record and with a batch (answers equal to the predictor's), and the client errors 400, 413
/// and 404 with the server answering after each; every request logged. A handful of requests, each bounded in time.
final class PredictionServerTests: XCTestCase {
    /// Log lines of the server, collected.
    final class Log: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func append(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
    }

    struct ServerTestError: Error, CustomStringConvertible {
        let description: String
    }

    /// The running server's task, cancelled (a graceful shutdown) at the end of the test.
    var serverTask: Task<Void, Error>?

    override func tearDown() async throws {
        guard let task = serverTask else { return }
        task.cancel()
        let stopped = try await within(seconds: 10) { _ = await task.result }
        XCTAssertTrue(stopped, "the server did not stop within 10 s of its task's cancellation")
    }

    /// Runs `body`, waiting for it at most `seconds`; whether it finished in time.
    func within(seconds: Double, _ body: @escaping @Sendable () async -> Void) async throws -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await body(); return true }
            group.addTask { try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9)); return false }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
    }

    /// Starts `server` on a task and returns its URL once it listens (waiting at most 30 s).
    func start(_ server: PredictionServer) async throws -> URL {
        let (urls, continuation) = AsyncStream.makeStream(of: String.self)
        serverTask = Task { try await server.run { continuation.yield($0) } }
        let first = Task { () -> String? in
            for await url in urls { return url }
            return nil
        }
        _ = try await within(seconds: 30) { _ = await first.value }
        first.cancel()
        guard let line = await first.value, line.hasPrefix("http://127.0.0.1:"), let url = URL(string: line),
              (url.port ?? 0) > 0 else {
            throw ServerTestError(description: "the server did not report a loopback URL within 30 s")
        }
        return url
    }

    /// One HTTP exchange with a 10 s limit: (status, body).
    func send(_ method: String, _ url: URL, _ body: String? = nil) async throws -> (Int, String) {
        var request = URLRequest(url: url, timeoutInterval: 10)
        request.httpMethod = method
        if let body {
            request.httpBody = Data(body.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        return try await withCheckedThrowingContinuation { c in
            URLSession.shared.dataTask(with: request) { data, response, error in
                if let error { return c.resume(throwing: error) }
                c.resume(returning: ((response as? HTTPURLResponse)?.statusCode ?? -1,
                                     String(decoding: data ?? Data(), as: UTF8.self)))
            }.resume()
        }
    }

    func object(_ body: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any], body,
                      file: file, line: line)
    }

    func testServesHealthPredictionsAndClientErrors() async throws {
        let log = Log()
        let server = PredictionServer(
            predictor: try ServingFixtures.predictor(.classification(labels: 2)), modelName: "tiny",
            configuration: ServerConfiguration(port: 0, maxBodyBytes: 400, maxInputs: 3, maxBatch: 8, batchWindow: 0.001),
            log: { log.append($0) })
        let base = try await start(server)
        let reference = try ServingFixtures.predictor(.classification(labels: 2))

        var (status, body) = try await send("GET", base.appendingPathComponent("health"))
        XCTAssertEqual(status, 200, body)
        XCTAssertEqual(body, #"{"labels":["LABEL_0","LABEL_1"],"max_batch":8,"max_body_bytes":400,"max_inputs":3,"#
                       + #""max_length":16,"model":"tiny","statistics":{"batches":0,"largest_batch":0,"records":0,"#
                       + #""requests":0},"status":"ok","task":"classification"}"#)

        let predict = base.appendingPathComponent("predict")
        let texts = ServingFixtures.texts(3)
        (status, body) = try await send("POST", predict, #"{"id": "a", "text": "\#(texts[0])"}"#)
        XCTAssertEqual(status, 200, body)
        var expected = reference.predict([.text(texts[0])])[0]
        var answer = try object(body)
        XCTAssertEqual(answer["id"] as? String, "a")
        XCTAssertEqual(answer["label"] as? String, expected.label)
        let probabilities = try XCTUnwrap(answer["probabilities"] as? [String: Double])
        for (name, p) in try XCTUnwrap(expected.probabilities) {
            XCTAssertTrue(isClose(probabilities[name] ?? .nan, Double(p), tolerance: 1e-5), "\(name): \(probabilities)")
        }

        (status, body) = try await send("POST", predict,
                                        #"{"inputs": [{"text": "\#(texts[1])", "text_pair": "\#(texts[2])"}, {"text": 1}, {"id": 3, "text": " "}]}"#)
        XCTAssertEqual(status, 200, body)
        let outputs = try XCTUnwrap(try object(body)["outputs"] as? [[String: Any]], body)
        XCTAssertEqual(outputs.count, 3)
        expected = reference.predict([.pair(texts[1], texts[2])])[0]
        XCTAssertEqual(outputs[0]["label"] as? String, expected.label)
        let pairProbabilities = try XCTUnwrap(outputs[0]["probabilities"] as? [String: Double])
        for (name, p) in try XCTUnwrap(expected.probabilities) {
            XCTAssertTrue(isClose(pairProbabilities[name] ?? .nan, Double(p), tolerance: 1e-5), "\(name)")
        }
        XCTAssertEqual(outputs[1]["error"] as? String,
                       #"inputs[1]: "text" is a number; expected a string"#)
        XCTAssertEqual(outputs[2]["error"] as? String, "inputs[2]: the text is empty")
        XCTAssertEqual(outputs[2]["id"] as? Int, 3)

        // Client errors: status and message; the server answers after each.
        let errors: [(String, URL, String?, Int, String)] = [
            ("POST", predict, #"{"text": "the film"#, 400, "malformed JSON"),
            ("POST", predict, "", 400, "empty body"),
            ("POST", predict, #"{"txt": "the film"}"#, 400, "no \"text\" or \"question\" key"),
            ("POST", predict, #"{"text": "\#(String(repeating: "good ", count: 100))"}"#, 413, "larger than 400 bytes"),
            ("POST", predict, #"{"inputs": [{"text": "a"}, {"text": "b"}, {"text": "c"}, {"text": "d"}]}"#, 413,
             "4 inputs; at most 3"),
            ("GET", base.appendingPathComponent("nope"), nil, 404, "no route GET /nope"),
            ("GET", predict, nil, 404, "expected POST /predict or GET /health"),
        ]
        for (method, url, request, code, fragment) in errors {
            (status, body) = try await send(method, url, request)
            XCTAssertEqual(status, code, "\(method) \(url.path): \(body)")
            let message = try XCTUnwrap(try object(body)["error"] as? String, body)
            XCTAssertTrue(message.contains(fragment), "\(method) \(url.path): \(message)")
        }

        (status, body) = try await send("GET", base.appendingPathComponent("health"))
        XCTAssertEqual(status, 200, body)
        let statistics = try XCTUnwrap(try object(body)["statistics"] as? [String: Int], body)
        XCTAssertEqual(statistics["requests"], 2, "the two good POSTs")
        XCTAssertEqual(statistics["records"], 3, "one record, then two of the batch's three")
        let lines = log.all
        XCTAssertEqual(lines.count, 11, "\(lines)")
        for logged in ["GET /health 200", "POST /predict 200 1 records", "POST /predict 200 2 records",
                       "POST /predict 400", "POST /predict 413", "GET /nope 404", "GET /predict 404"] {
            XCTAssertTrue(lines.contains { $0.hasPrefix(logged) && $0.hasSuffix(" ms") }, "\(logged): \(lines)")
        }
    }
}

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import BERT
import Logging
import Runtime
import Tensor
@testable import Serving

/// `PredictionServer` in this process on a free loopback port, with a tiny random classifier: `/health`,
/// `/predict` with one record and with a batch (answers equal to the predictor's), the client errors 400, 413 and
/// 404 with the server answering after each, every request logged as a logfmt line, and `/metrics` counting what was
/// sent; a model with duplicate label names refused. A handful of requests, each bounded in time.
final class PredictionServerTests: ServerTestCase {
    func testServesHealthPredictionsAndClientErrors() async throws {
        let log = Log()
        let server = try classifierServer(
            ServerConfiguration(port: 0, maxBodyBytes: 400, maxInputs: 3, maxBatch: 8, batchWindow: 0.001), log: log)
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
        let answer = try object(body)
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
            ("GET", predict, nil, 404, "expected GET / (the page), POST /predict, GET /health or GET /metrics"),
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
        // One logfmt line per request: method, path, status, records of a read POST /predict, latency; the error
        // message of an error answer.
        let requests = log.all.map(Self.fields).filter { $0["msg"] == "request" }
        XCTAssertEqual(requests.count, 11, "\(log.all)")
        for line in requests {
            XCTAssertNotNil(line["ts"], "\(line)")
            XCTAssertNotNil(Double(line["latency_ms"] ?? ""), "\(line)")
            XCTAssertEqual(line["level"], (Int(line["status"] ?? "") ?? 0) >= 400 ? "warning" : "info", "\(line)")
        }
        func logged(_ method: String, _ path: String, _ status: String, inputs: String? = nil) -> [[String: String]] {
            requests.filter { $0["method"] == method && $0["path"] == path && $0["status"] == status
                && $0["inputs"] == inputs }
        }
        XCTAssertEqual(logged("GET", "/health", "200").count, 2, "\(requests)")
        XCTAssertEqual(logged("POST", "/predict", "200", inputs: "1").count, 1, "\(requests)")
        XCTAssertEqual(logged("POST", "/predict", "200", inputs: "2").count, 1, "\(requests)")
        XCTAssertEqual(logged("POST", "/predict", "400").count, 3, "\(requests)")
        XCTAssertEqual(logged("POST", "/predict", "413").count, 2, "\(requests)")
        XCTAssertEqual(logged("GET", "/nope", "404").first?["error"],
                       "no route GET /nope; expected GET / (the page), POST /predict, GET /health or GET /metrics")
        XCTAssertEqual(logged("POST", "/predict", "400").first?["error"]?.hasPrefix("malformed JSON"), true)
        XCTAssertEqual(logged("GET", "/predict", "404").count, 1, "\(requests)")
    }

    /// `/metrics` is the Prometheus text format and counts what was sent: requests by route, method and status, the
    /// latency histogram, records per request, batches and their records, record errors.
    func testMetricsCountWhatWasSent() async throws {
        let log = Log()
        let server = try classifierServer(
            ServerConfiguration(port: 0, maxBodyBytes: 400, maxInputs: 3, maxBatch: 8, batchWindow: 0), log: log)
        let base = try await start(server)
        let predict = base.appendingPathComponent("predict")
        let texts = ServingFixtures.texts(6)
        var sent: [(String, URL, String?, Int)] = []
        for (k, text) in texts.enumerated() {  // one after another: one batch each
            sent.append(("POST", predict, k % 2 == 0 ? #"{"text": "\#(text)"}"#
                                          : #"{"inputs": [{"text": "\#(text)"}, {"text": " "}, {"txt": 1}]}"#, 200))
        }
        sent += [("POST", predict, "{", 400), ("GET", base.appendingPathComponent("health"), nil, 200),
                 ("GET", base.appendingPathComponent("nope/1"), nil, 404),
                 ("GET", base.appendingPathComponent("nope/2"), nil, 404)]
        for (method, url, body, code) in sent {
            let (status, answer) = try await send(method, url, body)
            XCTAssertEqual(status, code, answer)
        }
        let (status, text) = try await send("GET", base.appendingPathComponent("metrics"))
        XCTAssertEqual(status, 200, text)
        let samples = Self.samples(text)
        func value(_ key: String) -> Double? { samples[key] }
        XCTAssertEqual(value(#"cofi_serve_requests_total{route="/predict",method="POST",status="200"}"#), 6, text)
        XCTAssertEqual(value(#"cofi_serve_requests_total{route="/predict",method="POST",status="400"}"#), 1, text)
        XCTAssertEqual(value(#"cofi_serve_requests_total{route="/health",method="GET",status="200"}"#), 1, text)
        XCTAssertEqual(value(#"cofi_serve_requests_total{route="other",method="GET",status="404"}"#), 2,
                       "paths without a route share one label: \(text)")
        XCTAssertEqual(value(#"cofi_serve_errors_total{kind="client"}"#), 3, text)
        XCTAssertEqual(value(#"cofi_serve_errors_total{kind="server"}"#), 0, text)
        XCTAssertEqual(value(#"cofi_serve_errors_total{kind="record"}"#), 6, "3 batches × (an empty text, not a record)")
        XCTAssertEqual(value(#"cofi_serve_request_duration_seconds_count{route="/predict"}"#), 7, text)
        XCTAssertEqual(value(#"cofi_serve_request_duration_seconds_bucket{route="/predict",le="+Inf"}"#), 7, text)
        XCTAssertGreaterThan(value(#"cofi_serve_request_duration_seconds_sum{route="/predict"}"#) ?? 0, 0, text)
        // Inputs per read request: three of 1 (singles) and three of 2 (a text and an empty text are inputs).
        XCTAssertEqual(value("cofi_serve_request_inputs_count"), 6, text)
        XCTAssertEqual(value("cofi_serve_request_inputs_sum"), 9, text)
        XCTAssertEqual(value(#"cofi_serve_request_inputs_bucket{le="1.0"}"#), 3, text)
        // Sent one after another with no window: one batch per request.
        XCTAssertEqual(value("cofi_serve_batch_records_count"), 6, text)
        XCTAssertEqual(value("cofi_serve_batch_records_sum"), 9, text)
        XCTAssertEqual(value("cofi_serve_batch_duration_seconds_count"), 6, text)
        XCTAssertEqual(value(#"cofi_serve_connections_total{outcome="refused"}"#), 0, text)
        XCTAssertGreaterThanOrEqual(value(#"cofi_serve_connections_total{outcome="accepted"}"#) ?? 0, 1, text)
        XCTAssertGreaterThanOrEqual(value("cofi_serve_connections_open") ?? 0, 1, text)
        XCTAssertEqual(value("cofi_serve_read_timeouts_total"), 0, text)

        // The scrape itself is counted in the next one.
        let (_, again) = try await send("GET", base.appendingPathComponent("metrics"))
        XCTAssertEqual(Self.samples(again)[#"cofi_serve_requests_total{route="/metrics",method="GET",status="200"}"#], 1,
                       again)
    }

    /// Two classes with one name: the server refuses the model before it listens (a predictor would crash on the
    /// first answer building its name → probability map).
    func testDuplicateLabelNamesAreRefusedBeforeListening() throws {
        let config = BertConfig(vocabSize: 40, hiddenSize: 16, numHiddenLayers: 1, numAttentionHeads: 2,
                                intermediateSize: 24, maxPositionEmbeddings: 16, typeVocabSize: 2)
        let model = BertModel.randomlyInitialized(config: config, task: .classification(labels: 3), seed: 1)
        let predictor: Predictor
        do {
            predictor = try Predictor(model: model, tokenizer: ServingFixtures.tokenizer,
                                      labels: ["negative", "positive", "negative"], threads: 1)
        } catch {
            // A predictor that refuses the names itself leaves nothing for the server to check.
            return XCTAssertTrue("\(error)".contains("negative"), "\(error)")
        }
        XCTAssertThrowsError(try PredictionServer(predictor: predictor, modelName: "dup",
                                                  configuration: ServerConfiguration(port: 0), logger: Log().logger)) {
            XCTAssertEqual("\($0)", "the model's labels are not one-to-one: classes 0 and 2 are both named "
                           + "\"negative\" (config.json id2label); expected one name per class")
        }
    }
}

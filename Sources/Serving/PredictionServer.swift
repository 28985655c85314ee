import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Runtime

/// The limits and address of a `PredictionServer`.
public struct ServerConfiguration: Sendable {
    /// The address to bind (`127.0.0.1`: this machine only; `0.0.0.0`: every interface).
    public var host: String
    /// The port; 0 picks a free one (the server reports it when it is listening).
    public var port: Int
    /// The largest request body; a larger one is answered 413.
    public var maxBodyBytes: Int
    /// The most records in one request; more are answered 413.
    public var maxInputs: Int
    /// Records per gathered batch (`PredictionBatcher.maxBatch`).
    public var maxBatch: Int
    /// How long the first request of a batch waits for others, in seconds (`PredictionBatcher.window`).
    public var batchWindow: TimeInterval

    public init(host: String = "127.0.0.1", port: Int = 8080, maxBodyBytes: Int = 1 << 20, maxInputs: Int = 256,
                maxBatch: Int = 32, batchWindow: TimeInterval = 0.005) {
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.maxInputs = maxInputs
        self.maxBatch = maxBatch
        self.batchWindow = batchWindow
    }
}

/// `GET /health`'s answer: what the server runs, its limits, and what it has done.
public struct HealthReport: Codable, Sendable, Equatable {
    public var status = "ok"
    /// The model's name (`cofi serve`: the model directory's name).
    public var model: String
    /// The head: "classification", "regression" or "span".
    public var task: String
    /// Classification: the label names by class index; empty otherwise.
    public var labels: [String]
    /// Tokens per sequence, special tokens included; longer texts are truncated and flagged.
    public var maxLength: Int
    public var maxBatch: Int
    public var maxInputs: Int
    public var maxBodyBytes: Int
    public var statistics: PredictionBatcher.Statistics

    enum CodingKeys: String, CodingKey {
        case status, model, task, labels, statistics
        case maxLength = "max_length"
        case maxBatch = "max_batch"
        case maxInputs = "max_inputs"
        case maxBodyBytes = "max_body_bytes"
    }
}

/// An HTTP JSON endpoint in front of a `Predictor` (Hummingbird, HTTP/1.1):
/// - `POST /predict`: one record (`{"text": …}`, `{"text": …, "text_pair": …}`, `{"question": …, "context": …}`,
///   optional `"id"`) → its prediction object; `{"inputs": [record, …]}` → `{"outputs": [prediction, …]}` in order.
///   Records and predictions are `cofi predict`'s JSON lines (`PredictionRequest`). Records of concurrent requests
///   are predicted together (`PredictionBatcher`).
/// - `GET /health`: `HealthReport`.
/// - Client errors are answered `{"error": "…"}` with 400 (malformed JSON, not a record), 413 (a body over
///   `maxBodyBytes`, more than `maxInputs` records) or 404 (another route); the server goes on serving.
/// Every request is logged to stderr: method, path, status, records, milliseconds.
public final class PredictionServer: @unchecked Sendable {
    public let configuration: ServerConfiguration
    private let batcher: PredictionBatcher
    private let modelName: String
    private let task: String
    private let labels: [String]
    private let maxLength: Int
    private let log: @Sendable (String) -> Void

    /// A server for `predictor` (which it then owns: no one else may call it). `log` receives one line per request
    /// (default: stderr).
    public init(predictor: Predictor, modelName: String, configuration: ServerConfiguration,
                log: @escaping @Sendable (String) -> Void = PredictionServer.logToStandardError) {
        self.configuration = configuration
        self.modelName = modelName
        switch predictor.task {
        case .classification: task = "classification"
        case .regression: task = "regression"
        case .span: task = "span"
        }
        labels = predictor.labels
        maxLength = predictor.maxLength
        self.log = log
        batcher = PredictionBatcher(predictor: predictor, maxBatch: configuration.maxBatch,
                                    window: configuration.batchWindow)
    }

    /// Writes `line` and a newline to stderr in one write.
    public static let logToStandardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// What `GET /health` answers now.
    public var health: HealthReport {
        HealthReport(model: modelName, task: task, labels: labels, maxLength: maxLength,
                     maxBatch: configuration.maxBatch, maxInputs: configuration.maxInputs,
                     maxBodyBytes: configuration.maxBodyBytes, statistics: batcher.currentStatistics)
    }

    /// Serves until SIGINT or SIGTERM, then finishes the requests in flight and returns. `onListening` gets the
    /// server's URL (`http://HOST:PORT`, with the port actually bound when `configuration.port` is 0) once it
    /// accepts connections. Throws when the address cannot be bound. Runs once: the batcher stops with it.
    public func run(onListening: @escaping @Sendable (String) -> Void) async throws {
        let router = Router()
        router.middlewares.add(RequestLogMiddleware(log: log))
        router.get("health") { _, _ in
            PredictionServer.json(.ok, String(decoding: try PredictionServer.healthEncoder.encode(self.health),
                                              as: UTF8.self))
        }
        router.post("predict") { request, _ in await self.predict(request) }
        var logger = Logger(label: "cofi.serve", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .warning
        let host = configuration.host
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: "cofi"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                onListening("http://\(host.contains(":") ? "[\(host)]" : host):\(port)")
            },
            logger: logger)
        defer { batcher.stop() }
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }

    /// `POST /predict`: reads the body within the limit, predicts its records with the batcher, answers them.
    private func predict(_ request: Request) async -> Response {
        let limit = configuration.maxBodyBytes
        let tooLarge = RequestError(status: 413, message: "the request body is larger than \(limit) bytes "
                                    + "(cofi serve --max-body-bytes); send fewer or shorter records per request")
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            return Self.json(tooLarge)
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch let e as HTTPResponseError where e.status == .contentTooLarge {
            return Self.json(tooLarge)
        } catch {
            return Self.json(RequestError(status: 400, message: "cannot read the request body (\(error))"))
        }
        switch PredictionRequest.parse(Data(body.readableBytesView), maxInputs: configuration.maxInputs) {
        case .failure(let e):
            return Self.json(e)
        case .success(let parsed):
            let predictions = await batcher.predict(parsed.inputs)
            var response = Self.json(.ok, parsed.answer(predictions))
            response.headers[Self.recordsHeader] = "\(parsed.inputs.count)"
            return response
        }
    }

    /// The response header that tells the request log how many records a request had.
    static let recordsHeader = HTTPField.Name("X-Cofi-Records")!

    static let healthEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    /// A JSON response.
    static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// A client error's response: its status and `{"error": …}`.
    static func json(_ error: RequestError) -> Response {
        json(HTTPResponse.Status(code: error.status), error.json)
    }
}

/// Logs every request (method, path, status, records, milliseconds) and turns the router's errors — an unknown
/// route above all — into JSON error responses.
struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let log: @Sendable (String) -> Void

    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch let e as HTTPResponseError {
            let message = e.status == .notFound
                ? "no route \(request.method) \(request.uri.path); expected POST /predict or GET /health"
                : "\(e.status.code) \(e.status.reasonPhrase)" + ((e as? HTTPError)?.body.map { ": \($0)" } ?? "")
            response = PredictionServer.json(e.status, RequestError.json(message))
        } catch {
            response = PredictionServer.json(.internalServerError, RequestError.json("internal error: \(error)"))
        }
        let elapsed = ContinuousClock.now - start
        let ms = Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) * 1e-15
        let records = response.headers[PredictionServer.recordsHeader].map { " \($0) records" } ?? ""
        response.headers[PredictionServer.recordsHeader] = nil
        log("\(request.method) \(request.uri.path) \(response.status.code)\(records) \(String(format: "%.1f", ms)) ms")
        return response
    }
}

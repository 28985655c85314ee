import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
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
    /// How long a request may take to arrive whole, from its first byte to the end of its body, in seconds; a late
    /// one is answered 408 and its connection closed.
    public var readTimeout: TimeInterval
    /// How long a connection with no request in progress stays open, in seconds (Hummingbird's idle timeout).
    public var idleTimeout: TimeInterval
    /// The most open connections; at the limit the longest-idle one is closed for a new one, or the new one is
    /// answered 503 when none is idle (`ConnectionTable`).
    public var maxConnections: Int

    public init(host: String = "127.0.0.1", port: Int = 8080, maxBodyBytes: Int = 1 << 20, maxInputs: Int = 256,
                maxBatch: Int = 32, batchWindow: TimeInterval = 0.005, readTimeout: TimeInterval = 10,
                idleTimeout: TimeInterval = 30, maxConnections: Int = 4096) {
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.maxInputs = maxInputs
        self.maxBatch = maxBatch
        self.batchWindow = batchWindow
        self.readTimeout = readTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
    }
}

/// A model the server refuses to serve (checked before it listens), and why.
public struct ServerSetupError: Error, CustomStringConvertible {
    public let description: String
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

/// An HTTP JSON endpoint in front of a `Predictor` (Hummingbird, HTTP/1.1), with a page to try it in a browser:
/// - `GET /`: `PredictionPage`, an HTML form that posts to `POST /predict` and shows the answer, with the model's
///   facts and, when given (`ModelPage`), its structure figure and model card.
/// - `POST /predict`: one record (`{"text": …}`, `{"text": …, "text_pair": …}`, `{"question": …, "context": …}`,
///   optional `"id"`) → its prediction object; `{"inputs": [record, …]}` → `{"outputs": [prediction, …]}` in order.
///   Records and predictions are `cofi predict`'s JSON lines (`PredictionRequest`). Records of concurrent requests
///   are predicted together (`PredictionBatcher`).
/// - `GET /health`: `HealthReport`.
/// - `GET /metrics`: `ServerMetrics` in the Prometheus text format.
/// - Client errors are answered `{"error": "…"}` with 400 (malformed JSON, not a record), 413 (a body over
///   `maxBodyBytes`, more than `maxInputs` records), 408 (a request not received whole within `readTimeout`), 404
///   (another route) or 503 (a connection over `maxConnections` with none idle); the server goes on serving.
/// Every request is logged as one line (`LogfmtLogHandler` by default): method, path, status, records, latency.
public final class PredictionServer: @unchecked Sendable {
    public let configuration: ServerConfiguration
    /// The request log and the server's other messages.
    public let logger: Logger
    let metrics = ServerMetrics()
    private let batcher: PredictionBatcher
    /// `health` before any request: the model and the limits.
    private let facts: HealthReport
    /// `GET /`'s document and its Content-Security-Policy, built once.
    private let page: PredictionPage

    /// The default logger: logfmt lines on stderr, level info.
    public static var standardErrorLogger: Logger {
        Logger(label: "cofi.serve", factory: { LogfmtLogHandler(label: $0) })
    }

    /// A server for `predictor` (which it then owns: no one else may call it). `logger` gets one line per request;
    /// `page` is what `GET /` shows of the model besides its facts (the structure figure, the model card).
    /// Throws `ServerSetupError` for a model it cannot answer for: classification labels that are not one name
    /// per class.
    public init(predictor: Predictor, modelName: String, configuration: ServerConfiguration,
                page: ModelPage = ModelPage(),
                logger: Logger = PredictionServer.standardErrorLogger) throws {
        var classOf: [String: Int] = [:]
        for (i, name) in predictor.labels.enumerated() {
            if let j = classOf[name] {
                throw ServerSetupError(description: "the model's labels are not one-to-one: classes \(j) and \(i) are "
                                       + "both named \"\(name)\" (config.json id2label); expected one name per class")
            }
            classOf[name] = i
        }
        self.configuration = configuration
        let task: String
        switch predictor.task {
        case .classification: task = "classification"
        case .regression: task = "regression"
        case .span: task = "span"
        }
        facts = HealthReport(model: modelName, task: task, labels: predictor.labels, maxLength: predictor.maxLength,
                             maxBatch: configuration.maxBatch, maxInputs: configuration.maxInputs,
                             maxBodyBytes: configuration.maxBodyBytes, statistics: PredictionBatcher.Statistics())
        self.page = PredictionPage(health: facts, acceptsPairs: predictor.engine.shape.typeVocabSize >= 2, model: page)
        self.logger = logger
        let metrics = self.metrics
        batcher = PredictionBatcher(predictor: predictor, maxBatch: configuration.maxBatch,
                                    window: configuration.batchWindow,
                                    onBatch: { records, duration in metrics.batch(records: records, duration: duration) })
    }

    /// What `GET /health` answers now.
    public var health: HealthReport {
        var report = facts
        report.statistics = batcher.currentStatistics
        return report
    }

    /// Serves until SIGINT or SIGTERM, then finishes the requests in flight and returns. `onListening` gets the
    /// server's URL (`http://HOST:PORT`, with the port actually bound when `configuration.port` is 0) once it
    /// accepts connections. Throws when the address cannot be bound. Runs once: the batcher stops with it.
    public func run(onListening: @escaping @Sendable (String) -> Void) async throws {
        let router = Router()
        router.middlewares.add(RequestLogMiddleware(logger: logger, metrics: metrics))
        router.get("/") { _, _ in self.pageResponse() }
        router.get("health") { _, _ in
            PredictionServer.json(.ok, String(decoding: try PredictionServer.healthEncoder.encode(self.health),
                                              as: UTF8.self))
        }
        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: self.metrics.text())))
        }
        router.post("predict") { request, _ in await self.predict(request) }
        var frameworkLogger = logger
        frameworkLogger.logLevel = max(logger.logLevel, .warning)
        let host = configuration.host
        let connections = ConnectionTable(limit: configuration.maxConnections, metrics: metrics, logger: logger)
        let http1 = HTTP1Channel.Configuration(idleTimeout: .nanoseconds(Int64(configuration.idleTimeout * 1e9)))
        let readTimeout = TimeAmount.nanoseconds(Int64(configuration.readTimeout * 1e9))
        let (metrics, logger) = (self.metrics, self.logger)
        let server = HTTPServerBuilder { responder in
            GuardedHTTP1Channel(http: HTTP1Channel(responder: responder, configuration: http1), connections: connections,
                                readTimeout: readTimeout, metrics: metrics, logger: logger)
        }
        let app = Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: "cofi",
                                 backlog: Self.backlog),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                onListening("http://\(host.contains(":") ? "[\(host)]" : host):\(port)")
            },
            logger: frameworkLogger)
        defer { batcher.stop() }
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }

    /// `GET /`: the page, with its Content-Security-Policy.
    private func pageResponse() -> Response {
        Response(status: .ok,
                 headers: [.contentType: "text/html; charset=utf-8",
                           .contentSecurityPolicy: page.contentSecurityPolicy,
                           .xContentTypeOptions: "nosniff", Self.referrerPolicy: "no-referrer",
                           .cacheControl: "no-cache"],
                 body: .init(byteBuffer: ByteBuffer(string: page.html)))
    }

    /// Connections waiting to be accepted (the listen backlog; the kernel may cap it).
    static let backlog = 1024

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
        } catch let e as RequestReadTimeout {
            var response = Self.json(RequestError(status: 408, message: e.description))
            response.headers[.connection] = "close"
            return response
        } catch {
            return Self.json(RequestError(status: 400, message: "cannot read the request body (\(error))"))
        }
        switch PredictionRequest.parse(Data(body.readableBytesView), maxInputs: configuration.maxInputs) {
        case .failure(let e):
            return Self.json(e)
        case .success(let parsed):
            let predictions = await batcher.predict(parsed.inputs)
            metrics.requestInputs.record(parsed.inputs.count)
            let refused = predictions.filter { $0.error != nil }.count + parsed.unreadRecords
            if refused > 0 { metrics.recordErrors.increment(by: refused) }
            var response = Self.json(.ok, parsed.answer(predictions))
            response.headers[Self.recordsHeader] = "\(parsed.inputs.count)"
            return response
        }
    }

    /// The `Referrer-Policy` response header (not among HTTPTypes' names).
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
    /// The response header that tells the request log how many records a request had (removed before sending).
    static let recordsHeader = HTTPField.Name("X-Cofi-Records")!
    /// The response header that tells the request log an error answer's message (removed before sending).
    static let errorHeader = HTTPField.Name("X-Cofi-Error")!

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

    /// A client error's response: its status and `{"error": …}` (and the message for the request log).
    static func json(_ error: RequestError) -> Response {
        var response = json(HTTPResponse.Status(code: error.status), error.json)
        response.headers[errorHeader] = error.message
        return response
    }
}

/// Logs and counts every request — one line: method, path, status, records (`inputs`, for `POST /predict` that was
/// read), latency in milliseconds, and the message of an error answer (`error`); level info, warning for 4xx, error
/// for 5xx — and turns the router's errors — an unknown route above all — into JSON error responses.
struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch let e as HTTPResponseError {
            let message = e.status == .notFound
                ? "no route \(request.method) \(request.uri.path); expected GET / (the page), POST /predict, "
                    + "GET /health or GET /metrics"
                : "\(e.status.code) \(e.status.reasonPhrase)" + ((e as? HTTPError)?.body.map { ": \($0)" } ?? "")
            response = PredictionServer.json(RequestError(status: e.status.code, message: message))
        } catch {
            response = PredictionServer.json(.internalServerError, RequestError.json("internal error: \(error)"))
            response.headers[PredictionServer.errorHeader] = "internal error: \(error)"
        }
        let elapsed = ContinuousClock.now - start
        let ms = Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) * 1e-15
        var metadata: Logger.Metadata = [
            "method": "\(request.method)", "path": "\(request.uri.path)", "status": "\(response.status.code)",
            "latency_ms": "\(String(format: "%.3f", ms))",
        ]
        if let records = response.headers[PredictionServer.recordsHeader] { metadata["inputs"] = "\(records)" }
        if let message = response.headers[PredictionServer.errorHeader] { metadata["error"] = "\(message)" }
        response.headers[PredictionServer.recordsHeader] = nil
        response.headers[PredictionServer.errorHeader] = nil
        let level: Logger.Level = response.status.code >= 500 ? .error : response.status.code >= 400 ? .warning : .info
        logger.log(level: level, "request", metadata: metadata)
        metrics.request(path: request.uri.path, method: "\(request.method)", status: response.status.code,
                        latency: elapsed)
        return response
    }
}

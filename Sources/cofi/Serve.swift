import ArgumentParser
import BERT
import Charts
import Foundation
import Logging
import Runtime
import Serving
import Tasks

/// `cofi serve`: predictions over HTTP, with the records of concurrent requests batched into shared engine calls.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve predictions over HTTP (JSON): the records and answers of cofi predict, batched across requests.",
        discussion: """
            MODEL is what cofi predict takes (a cofi finetune output's best/ or a cofi prune output's final/); it is \
            loaded and checked before the server listens, and a model that cannot be served stops cofi serve with \
            the error. When the server accepts connections it prints one line to stdout, "listening on \
            http://HOST:PORT" (with --port 0 the port it was given). Ctrl-C or SIGTERM stops it after the requests \
            in flight are answered.

            Endpoints:
              GET /          a page to try the model in a browser (open http://HOST:PORT/): a form for a text \
            (question and context for a question-answering model) that shows the label and probabilities, the \
            value or the answer; the model's facts, and its model card (MODEL/README.md, when there is one). \
            GET /?text=… fills the form and submits it.
              POST /predict  one record — {"text": …}, {"text": …, "text_pair": …} or {"question": …, "context": …}, \
            with an optional "id" — answered with the object cofi predict writes for it; or {"inputs": [record, …]} \
            answered {"outputs": [answer, …]} in order (an element that is not a record gets {"error": \
            "inputs[K]: …"} and the others are answered).
              GET /health    {"status": "ok", "model", "task", "labels", "max_length", the limits, "statistics"}.
              GET /metrics   Prometheus text format: cofi_serve_requests_total{route,method,status}, \
            cofi_serve_errors_total{kind}, cofi_serve_request_duration_seconds (histogram), \
            cofi_serve_request_inputs, cofi_serve_batch_records, cofi_serve_batch_duration_seconds, \
            cofi_serve_connections_open, cofi_serve_connections_total{outcome}, \
            cofi_serve_connections_evicted_total, cofi_serve_read_timeouts_total.
            Errors are {"error": "…"}: 400 for malformed JSON or a body that is not a record, 413 for a body over \
            --max-body-bytes or more than --max-inputs records, 408 for a request not received whole within \
            --read-timeout-ms, 404 for any other route, 503 for a connection over --max-connections.

            Slow and idle clients: a request must arrive whole, from its first byte to the end of its body, within \
            --read-timeout-ms (else 408 and the connection is closed); a connection with no request in progress is \
            closed after --idle-timeout-s; at most --max-connections are open — at the limit the connection idle \
            the longest is closed to admit a new one, and a new one is refused (503) only when every open \
            connection has a request in progress. cofi serve raises its open-files limit to fit the connections \
            (up to the hard limit; it lowers --max-connections with a warning when that is not enough).

            Logs go to stderr in logfmt, one line per entry: ts=… level=… msg=… key=value …; each request is a line \
            msg=request method=… path=… status=… inputs=… (records, POST /predict) latency_ms=…, with error="…" \
            for an error answer (level warning for 4xx, error for 5xx); connection events (read timeout, refused \
            connection) name the remote address.

            Requests that arrive together are predicted together: the first waits up to --max-wait-ms for others, \
            up to --max-batch records in all, and the engine runs their sequences packed in one call.

            Example:
              cofi serve --model runs/prune95/final --port 8080 &
              curl -s localhost:8080/predict -d '{"text": "a gripping, funny film"}'
              curl -s localhost:8080/predict -d '{"inputs": [{"id": 1, "text": "dull"}, {"id": 2, "text": "superb"}]}'
              curl -s localhost:8080/health
            """)

    @Option(help: "Model directory (a cofi finetune output's best/ or a cofi prune output's final/).")
    var model: String

    @Option(help: "Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0: a free port, printed in the \"listening on\" line).")
    var port = 8080

    @OptionGroup var encoding: PredictorFlags

    @Option(help: "Records predicted together, across requests (also the engine's sequences per call).")
    var maxBatch = 32

    @Option(help: "Milliseconds the first request of a batch waits for others (0: batch only what is already waiting).")
    var maxWaitMs: Double = 5

    @Option(help: "Largest request body in bytes; larger requests are answered 413.")
    var maxBodyBytes = 1 << 20

    @Option(help: "Most records per request; more are answered 413.")
    var maxInputs = 256

    @Option(help: "Milliseconds a request may take to arrive whole, from its first byte to the end of its body; a late one is answered 408 and its connection closed.")
    var readTimeoutMs = 10_000

    @Option(help: "Seconds a connection with no request in progress stays open.")
    var idleTimeoutS: Double = 30

    @Option(help: "Most open connections; at the limit the longest-idle one is closed for a new one (503 when none is idle).")
    var maxConnections = 4096

    func validate() throws {
        guard (0 ... 65535).contains(port) else { throw ValidationError("--port is \(port); expected 0 … 65535") }
        guard maxBatch > 0 else { throw ValidationError("--max-batch is \(maxBatch); expected a positive number") }
        guard maxWaitMs >= 0, maxWaitMs.isFinite else {
            throw ValidationError("--max-wait-ms is \(maxWaitMs); expected 0 or more")
        }
        guard maxBodyBytes > 0 else {
            throw ValidationError("--max-body-bytes is \(maxBodyBytes); expected a positive number")
        }
        guard maxInputs > 0 else { throw ValidationError("--max-inputs is \(maxInputs); expected a positive number") }
        guard readTimeoutMs > 0 else {
            throw ValidationError("--read-timeout-ms is \(readTimeoutMs); expected a positive number")
        }
        guard idleTimeoutS > 0, idleTimeoutS.isFinite, idleTimeoutS <= 1e6 else {
            throw ValidationError("--idle-timeout-s is \(idleTimeoutS); expected a positive number of seconds")
        }
        guard maxConnections > 0 else {
            throw ValidationError("--max-connections is \(maxConnections); expected a positive number")
        }
    }

    func run() throws {
        let directory = absoluteURL(model)
        let predictor: Predictor
        do {
            predictor = try encoding.predictor(directory, batchSize: maxBatch)
        } catch let e as UserError { throw e } catch { throw UserError(description: "\(error)") }
        let logger = PredictionServer.standardErrorLogger
        var connections = maxConnections
        let wanted = maxConnections + OpenFileLimit.reserve
        let files = OpenFileLimit.raise(toAtLeast: wanted)
        if files < wanted {
            connections = max(1, files - OpenFileLimit.reserve)
            logger.warning("the open-files limit is too low for --max-connections", metadata: [
                "open_files_limit": "\(files)", "max_connections": "\(connections)",
                "wanted": "\(maxConnections)"])
        }
        let configuration = ServerConfiguration(host: host, port: port, maxBodyBytes: maxBodyBytes,
                                                maxInputs: maxInputs, maxBatch: maxBatch,
                                                batchWindow: maxWaitMs / 1000, readTimeout: Double(readTimeoutMs) / 1000,
                                                idleTimeout: idleTimeoutS, maxConnections: connections)
        // The page's figure of the kept structure, from config.json (the predictor loaded and validated it).
        let structureSVG = (try? BertConfig.load(from: directory.appendingPathComponent("config.json")))
            .map { StructureFigure(config: $0).svg() }
        let page = ModelPage(structureSVG: structureSVG, cardMarkdown: modelCard(directory, logger: logger))
        let server: PredictionServer
        do {
            server = try PredictionServer(predictor: predictor, modelName: ModelDirectory.displayName(directory),
                                          configuration: configuration, page: page, logger: logger)
        } catch {
            throw UserError(description: "\(directory.path): \(error)")
        }
        let health = server.health
        logger.info("serving", metadata: [
            "model": "\(health.model)", "task": "\(health.task)", "labels": "\(health.labels.joined(separator: ","))",
            "max_length": "\(health.maxLength)", "max_batch": "\(maxBatch)", "max_wait_ms": "\(maxWaitMs)",
            "read_timeout_ms": "\(readTimeoutMs)", "idle_timeout_s": "\(idleTimeoutS)",
            "max_connections": "\(connections)"])
        // The root command is synchronous: the server runs in a task and this thread waits for it.
        final class Outcome: @unchecked Sendable { var error: Error? }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                try await server.run { url in
                    FileHandle.standardOutput.write(Data("listening on \(url)\n".utf8))
                }
            } catch {
                outcome.error = error
            }
            done.signal()
        }
        done.wait()
        if let error = outcome.error {
            throw UserError(description: "cannot serve on \(host):\(port): \(error)")
        }
        logger.info("stopped")
    }

    /// The model card the page shows (MODEL/README.md), or nil when there is none or it cannot be shown (a
    /// warning says why; the server runs without it).
    func modelCard(_ directory: URL, logger: Logger) -> String? {
        do {
            return try ModelPage.card(in: directory)
        } catch {
            logger.warning("the model card is not shown on the page", metadata: ["error": "\(error)"])
            return nil
        }
    }
}

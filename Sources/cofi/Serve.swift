import ArgumentParser
import Foundation
import Runtime
import Serving
import Tasks

/// `cofi serve`: predictions over HTTP, with the records of concurrent requests batched into shared engine calls.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve predictions over HTTP (JSON): the records and answers of cofi predict, batched across requests.",
        discussion: """
            MODEL is what cofi predict takes (a cofi finetune output's best/ or a cofi prune output's final/). When \
            the server accepts connections it prints one line to stdout, "listening on http://HOST:PORT" (with \
            --port 0 the port it was given); every request is logged to stderr. Ctrl-C or SIGTERM stops it after \
            the requests in flight are answered.

            Endpoints:
              POST /predict  one record — {"text": …}, {"text": …, "text_pair": …} or {"question": …, "context": …}, \
            with an optional "id" — answered with the object cofi predict writes for it; or {"inputs": [record, …]} \
            answered {"outputs": [answer, …]} in order (an element that is not a record gets {"error": \
            "inputs[K]: …"} and the others are answered).
              GET /health    {"status": "ok", "model", "task", "labels", "max_length", the limits, "statistics"}.
            Errors are {"error": "…"}: 400 for malformed JSON or a body that is not a record, 413 for a body over \
            --max-body-bytes or more than --max-inputs records, 404 for any other route.

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
    }

    func run() throws {
        let directory = absoluteURL(model)
        let predictor: Predictor
        do {
            predictor = try encoding.predictor(directory, batchSize: maxBatch)
        } catch let e as UserError { throw e } catch { throw UserError(description: "\(error)") }
        let configuration = ServerConfiguration(host: host, port: port, maxBodyBytes: maxBodyBytes,
                                                maxInputs: maxInputs, maxBatch: maxBatch,
                                                batchWindow: maxWaitMs / 1000)
        let server = PredictionServer(predictor: predictor, modelName: ModelDirectory.displayName(directory),
                                      configuration: configuration)
        let health = server.health
        FileHandle.standardError.write(Data(("serving \(health.model) (\(health.task)"
            + (health.labels.isEmpty ? "" : ": \(health.labels.joined(separator: ", "))")
            + ", max length \(health.maxLength)); batches of up to \(maxBatch) records gathered for up to "
            + "\(maxWaitMs) ms\n").utf8))
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
        FileHandle.standardError.write(Data("stopped\n".utf8))
    }
}

import CoreMetrics
import Foundation
import Prometheus

/// The metrics of one `PredictionServer`, in a Prometheus registry of its own (no global `MetricsSystem`, so any
/// number of servers may run in one process), written by `GET /metrics` in the Prometheus text format:
/// - `cofi_serve_requests_total{route, method, status}`: answered requests; `route` is `/` (the page),
///   `/predict`, `/health`, `/metrics` or `other` (any path without a route, so that unknown paths cannot grow the label set).
/// - `cofi_serve_errors_total{kind}`: `client` (answers 4xx), `server` (answers 5xx), `record` (records answered
///   with an error inside a 200 answer).
/// - `cofi_serve_request_duration_seconds{route}`: histogram of the time from the request's head to its answer.
/// - `cofi_serve_request_inputs`: histogram of the records per `POST /predict` that was read.
/// - `cofi_serve_batch_records`, `cofi_serve_batch_duration_seconds`: histograms of the records and the predictor
///   time of each gathered batch.
/// - `cofi_serve_connections_open` (gauge), `cofi_serve_connections_total{outcome}` (`accepted`, `refused`: over
///   the connection limit with no idle connection to close), `cofi_serve_connections_evicted_total` (idle
///   connections closed to make room), `cofi_serve_read_timeouts_total` (requests not received whole in time).
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory

    let clientErrors, serverErrors, recordErrors: CoreMetrics.Counter
    let acceptedConnections, refusedConnections, evictedConnections, readTimeouts: CoreMetrics.Counter
    let openConnections: CoreMetrics.Gauge
    let requestInputs, batchRecords: CoreMetrics.Recorder
    let batchDuration: CoreMetrics.Timer

    /// Routes that are labels of their own; any other path is `other`.
    static let routes: Set<String> = ["/", "/predict", "/health", "/metrics"]

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        let durations: [Duration] = [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                                     .milliseconds(10), .milliseconds(20), .milliseconds(50), .milliseconds(100),
                                     .milliseconds(200), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5),
                                     .seconds(10)]
        factory.defaultDurationHistogramBuckets = durations
        factory.defaultValueHistogramBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        self.factory = factory
        func counter(_ label: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Counter {
            CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory)
        }
        clientErrors = counter("cofi_serve_errors_total", [("kind", "client")])
        serverErrors = counter("cofi_serve_errors_total", [("kind", "server")])
        recordErrors = counter("cofi_serve_errors_total", [("kind", "record")])
        acceptedConnections = counter("cofi_serve_connections_total", [("outcome", "accepted")])
        refusedConnections = counter("cofi_serve_connections_total", [("outcome", "refused")])
        evictedConnections = counter("cofi_serve_connections_evicted_total")
        readTimeouts = counter("cofi_serve_read_timeouts_total")
        openConnections = CoreMetrics.Gauge(label: "cofi_serve_connections_open", factory: factory)
        openConnections.record(0)
        requestInputs = CoreMetrics.Recorder(label: "cofi_serve_request_inputs", factory: factory)
        batchRecords = CoreMetrics.Recorder(label: "cofi_serve_batch_records", factory: factory)
        batchDuration = CoreMetrics.Timer(label: "cofi_serve_batch_duration_seconds", factory: factory)
    }

    /// The route label of `path`.
    static func route(_ path: String) -> String { routes.contains(path) ? path : "other" }

    /// Counts an answered request and its latency.
    func request(path: String, method: String, status: Int, latency: Duration) {
        let route = Self.route(path)
        CoreMetrics.Counter(label: "cofi_serve_requests_total",
                            dimensions: [("route", route), ("method", method), ("status", "\(status)")],
                            factory: factory).increment()
        CoreMetrics.Timer(label: "cofi_serve_request_duration_seconds", dimensions: [("route", route)],
                          factory: factory).recordNanoseconds(Self.nanoseconds(latency))
        if status >= 500 {
            serverErrors.increment()
        } else if status >= 400 {
            clientErrors.increment()
        }
    }

    /// Counts one gathered batch of `records` that the predictor answered in `duration`.
    func batch(records: Int, duration: Duration) {
        batchRecords.record(records)
        batchDuration.recordNanoseconds(Self.nanoseconds(duration))
    }

    /// The registry's metrics in the Prometheus text format (version 0.0.4).
    func text() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    static func nanoseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
    }
}

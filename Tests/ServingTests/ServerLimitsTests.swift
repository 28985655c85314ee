import Foundation
import XCTest
@testable import Serving

/// Slow and idle clients against `PredictionServer` in this process, over raw loopback connections: half-sent
/// requests (head or body, stalled or trickled) are answered 408 and closed at the read timeout while others are
/// served; idle connections close at the idle timeout; at the connection limit idle connections make room and
/// `/health` still answers, and a new connection is refused (503) only when every open one is busy; and 200 idle
/// connections held beside 4 clients cost nothing: every `/health` within 100 ms, no errors. Each test bounded to
/// a few seconds.
final class ServerLimitsTests: ServerTestCase {
    /// Runs blocking socket work on a thread of its own (never on the concurrency pool the server's handlers use).
    func onThread<T>(_ body: @escaping () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    /// The server's metrics now, read over a new connection (blocking: call it on a thread of its own).
    func metrics(_ port: Int) throws -> [String: Double] {
        let answer = try RawConnection(port: port).exchange("GET", "/metrics")
        XCTAssertEqual(answer.status, 200, answer.body)
        return Self.samples(answer.body)
    }

    func testHalfSentRequestsAreAnswered408AndClosedAtTheReadTimeout() async throws {
        let log = Log()
        let server = try classifierServer(ServerConfiguration(port: 0, batchWindow: 0, readTimeout: 0.3), log: log)
        let port = try await start(server).port!
        let text = ServingFixtures.texts(1)[0]
        try await onThread {
            let start = Date()
            // A body that stops, a head that stops, and a body trickled a byte every 100 ms past the timeout.
            let stalledBody = try RawConnection(port: port)
            try stalledBody.send("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 + "Content-Length: 100\r\n\r\n{\"text\": \"the")
            let stalledHead = try RawConnection(port: port)
            try stalledHead.send("POST /predict HTTP/1.1\r\nHo")
            // Meanwhile another client is answered at once.
            let other = try RawConnection(port: port)
            let answer = try other.exchange("POST", "/predict", #"{"text": "\#(text)"}"#)
            XCTAssertEqual(answer.status, 200, answer.body)
            XCTAssertLessThan(Date().timeIntervalSince(start), 0.3, "answered before the stalled requests' timeout")

            let trickled = try RawConnection(port: port)
            try trickled.send("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
            let trickleStart = Date()
            for _ in 0 ..< 6 {
                try? trickled.send(" ")
                usleep(100_000)
            }
            for (name, connection) in [("stalled body", stalledBody), ("stalled head", stalledHead),
                                       ("trickled body", trickled)] {
                let timedOut = try connection.readAnswer(timeout: 5)
                XCTAssertEqual(timedOut.status, 408, "\(name): \(timedOut.body)")
                XCTAssertEqual(timedOut.headers["connection"], "close", name)
                XCTAssertTrue(timedOut.body.contains("not received whole within 300 ms of its first byte "
                                                     + "(cofi serve --read-timeout-ms)"), "\(name): \(timedOut.body)")
                XCTAssertTrue(connection.waitForClose(timeout: 3), "\(name): still open after its 408")
            }
            XCTAssertLessThan(Date().timeIntervalSince(trickleStart), 3)
            XCTAssertLessThan(Date().timeIntervalSince(start), 5, "the timeouts took too long")
            // The connection that was answered is still open and still served.
            XCTAssertEqual(try other.exchange("GET", "/health").status, 200)
        }
        let samples = try await onThread { try self.metrics(port) }
        XCTAssertEqual(samples["cofi_serve_read_timeouts_total"], 3)
        XCTAssertEqual(samples[#"cofi_serve_requests_total{route="/predict",method="POST",status="408"}"#], 2,
                       "the two whose head had arrived are answered by the route")
        let timeouts = log.all.map(Self.fields).filter { $0["msg"] == "read timeout" }
        XCTAssertEqual(timeouts.count, 3, "\(log.all)")
        XCTAssertEqual(timeouts.filter { $0["head_received"] == "false" }.count, 1, "\(timeouts)")
        for line in timeouts {
            XCTAssertEqual(line["level"], "warning")
            XCTAssertEqual(line["read_timeout_ms"], "300")
            XCTAssertTrue(line["remote"]?.hasPrefix("127.0.0.1:") == true, "\(line)")
        }
        let answered = log.all.map(Self.fields).filter { $0["msg"] == "request" && $0["status"] == "408" }
        XCTAssertEqual(answered.count, 2, "\(log.all)")
        XCTAssertEqual(answered.first?["error"]?.hasPrefix("the request was not received whole"), true, "\(answered)")
    }

    func testIdleConnectionsCloseAtTheIdleTimeout() async throws {
        let server = try classifierServer(ServerConfiguration(port: 0, idleTimeout: 0.5), log: Log())
        let port = try await start(server).port!
        try await onThread {
            let start = Date()
            let silent = try RawConnection(port: port)
            let kept = try RawConnection(port: port)
            XCTAssertEqual(try kept.exchange("GET", "/health").status, 200)
            let answered = Date()
            XCTAssertFalse(silent.isClosed(within: 0.2), "closed before the idle timeout")
            XCTAssertTrue(silent.waitForClose(timeout: 3), "a connection that sent nothing stays open")
            XCTAssertGreaterThan(Date().timeIntervalSince(start), 0.45)
            XCTAssertTrue(kept.waitForClose(timeout: 3), "an idle keep-alive connection stays open")
            XCTAssertGreaterThan(Date().timeIntervalSince(answered), 0.45)
        }
    }

    func testAtTheLimitIdleConnectionsMakeRoomAndHealthStillAnswers() async throws {
        let server = try classifierServer(ServerConfiguration(port: 0, maxConnections: 10), log: Log())
        let port = try await start(server).port!
        try await onThread {
            // Opened 5 ms apart, so that the server admits them in this order (two event loops set connections up).
            let idle = try (0 ..< 30).map { _ in
                defer { usleep(5_000) }
                return try RawConnection(port: port)
            }
            for _ in 0 ..< 5 {
                let start = Date()
                let answer = try RawConnection(port: port).exchange("GET", "/health", timeout: 2)
                XCTAssertEqual(answer.status, 200, answer.body)
                XCTAssertLessThan(Date().timeIntervalSince(start), 0.5)
            }
            usleep(200_000)
            // 30 idle connections, then each health check's, at most 10 open: the 20 oldest idle ones were closed
            // to admit newer ones (and a health check may have closed a few more).
            let closed = idle.map { $0.isClosed() }
            XCTAssertEqual(closed.prefix(20), Array(repeating: true, count: 20)[...], "\(closed)")
            XCTAssertFalse(closed.last!, "the newest idle connection is closed last")
            let samples = try self.metrics(port)
            XCTAssertLessThanOrEqual(samples["cofi_serve_connections_open"] ?? .infinity, 10)
            XCTAssertEqual(samples["cofi_serve_connections_evicted_total"], Double(closed.filter { $0 }.count))
            XCTAssertEqual(samples[#"cofi_serve_connections_total{outcome="refused"}"#], 0)
        }
    }

    func testAtTheLimitWithEveryConnectionBusyANewOneIsRefused() async throws {
        let log = Log()
        let server = try classifierServer(ServerConfiguration(port: 0, readTimeout: 1, maxConnections: 3), log: log)
        let port = try await start(server).port!
        try await onThread {
            let busy = try (0 ..< 3).map { _ in try RawConnection(port: port) }
            for connection in busy {
                try connection.send("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{")
            }
            usleep(200_000)
            let refused = try RawConnection(port: port)
            let answer = try refused.readAnswer(timeout: 2)
            XCTAssertEqual(answer.status, 503, answer.body)
            XCTAssertTrue(answer.body.contains("too many connections: 3 are open, each with a request in progress "
                                               + "(cofi serve --max-connections)"), answer.body)
            XCTAssertTrue(refused.waitForClose(timeout: 2))
            // The busy ones end at their read timeout; then there is room again.
            for connection in busy { XCTAssertEqual(try connection.readAnswer(timeout: 3).status, 408) }
            for connection in busy { XCTAssertTrue(connection.waitForClose(timeout: 3)) }
            XCTAssertEqual(try RawConnection(port: port).exchange("GET", "/health", timeout: 3).status, 200)
        }
        let samples = try await onThread { try self.metrics(port) }
        XCTAssertEqual(samples[#"cofi_serve_connections_total{outcome="refused"}"#], 1)
        let refusals = log.all.map(Self.fields).filter { $0["msg"] == "connection refused" }
        XCTAssertEqual(refusals.count, 1, "\(log.all)")
        XCTAssertEqual(refusals.first?["open"], "3")
    }

    /// The serve limits test: 200 idle connections held open beside 4 clients sending 25 requests of 1–4 records
    /// each over keep-alive connections, and `/health` polled throughout: every `/health` within 100 ms, every
    /// request answered 200 with its records, and the idle connections still open at the end.
    func testIdleConnectionsBesideClientsCostNothing() async throws {
        let idleCount = 200, clients = 4, requestsPerClient = 25
        let wanted = 4 * idleCount + OpenFileLimit.reserve  // both ends of each connection are in this process
        let files = OpenFileLimit.raise(toAtLeast: wanted)
        guard files >= wanted else {
            throw XCTSkip("the open-files limit is \(files) and cannot be raised to \(wanted) "
                          + "(hard limit \(OpenFileLimit.current?.hard ?? -1)): this test holds \(idleCount) idle "
                          + "connections, both ends in this process")
        }
        let server = try classifierServer(ServerConfiguration(port: 0, maxBatch: 16, batchWindow: 0.002), log: Log())
        let port = try await start(server).port!
        final class Tally: @unchecked Sendable {
            let lock = NSLock()
            var errors: [String] = []
            var healthLatencies: [Double] = []
            func error(_ e: String) { lock.lock(); errors.append(e); lock.unlock() }
        }
        let tally = Tally()
        let texts = ServingFixtures.texts(40)
        try await onThread {
            let idle = try (0 ..< idleCount).map { _ in try RawConnection(port: port) }
            let done = DispatchGroup()
            let stop = DispatchSemaphore(value: 0)
            final class Flag: @unchecked Sendable { var finished = false }
            let flag = Flag()
            let finishedLock = NSLock()
            for c in 0 ..< clients {
                done.enter()
                Thread {
                    defer { done.leave() }
                    do {
                        let connection = try RawConnection(port: port)
                        for r in 0 ..< requestsPerClient {
                            let n = (c + r) % 4 + 1
                            let records = (0 ..< n).map { #"{"text": "\#(texts[(c * 7 + r + $0) % texts.count])"}"# }
                            let answer = try connection.exchange(
                                "POST", "/predict", #"{"inputs": ["# + records.joined(separator: ",") + "]}")
                            let outputs = (try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)))
                                .flatMap { ($0 as? [String: Any])?["outputs"] as? [[String: Any]] }
                            if answer.status != 200 || outputs?.count != n
                                || outputs?.contains(where: { $0["label"] == nil }) != false {
                                tally.error("client \(c) request \(r): \(answer.status) \(answer.body)")
                            }
                        }
                    } catch {
                        tally.error("client \(c): \(error)")
                    }
                }.start()
            }
            let health = Thread {
                do {
                    let connection = try RawConnection(port: port)
                    while true {
                        finishedLock.lock()
                        let end = flag.finished
                        finishedLock.unlock()
                        if end { break }
                        let start = Date()
                        let answer = try connection.exchange("GET", "/health", timeout: 5)
                        let latency = Date().timeIntervalSince(start)
                        tally.lock.lock()
                        tally.healthLatencies.append(latency)
                        tally.lock.unlock()
                        if answer.status != 200 { tally.error("/health: \(answer.status) \(answer.body)") }
                        usleep(20_000)
                    }
                } catch {
                    tally.error("/health: \(error)")
                }
                stop.signal()
            }
            health.start()
            XCTAssertEqual(done.wait(timeout: .now() + 60), .success, "the clients did not finish within 60 s")
            finishedLock.lock()
            flag.finished = true
            finishedLock.unlock()
            XCTAssertEqual(stop.wait(timeout: .now() + 10), .success)
            XCTAssertEqual(idle.filter { $0.isClosed() }.count, 0, "idle connections were closed")
            let samples = try self.metrics(port)
            XCTAssertEqual(samples["cofi_serve_request_inputs_count"], Double(clients * requestsPerClient))
            XCTAssertGreaterThanOrEqual(samples["cofi_serve_connections_open"] ?? 0, Double(idleCount + 1))
            XCTAssertEqual(samples["cofi_serve_connections_evicted_total"], 0)
        }
        XCTAssertEqual(tally.errors, [])
        XCTAssertGreaterThanOrEqual(tally.healthLatencies.count, 5, "too few /health checks")
        let slowest = tally.healthLatencies.max() ?? .infinity
        XCTAssertLessThan(slowest, 0.1, "/health took \(Int(slowest * 1000)) ms with \(idleCount) idle connections")
    }
}

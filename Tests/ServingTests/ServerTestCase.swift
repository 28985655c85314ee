import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import XCTest
@testable import Serving

/// A `PredictionServer` in this process on a free loopback port, stopped at the end of the test, with its log lines
/// collected; shared by the server tests.
class ServerTestCase: XCTestCase {
    /// Log lines of the server, collected.
    final class Log: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func append(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }

        /// A logger writing logfmt lines here.
        var logger: Logger {
            Logger(label: "cofi.serve.test", factory: { LogfmtLogHandler(label: $0, write: { self.append($0) }) })
        }
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

    /// A server over a tiny random classifier (labels LABEL_0, LABEL_1) logging to `log`.
    func classifierServer(_ configuration: ServerConfiguration, log: Log) throws -> PredictionServer {
        try PredictionServer(predictor: try ServingFixtures.predictor(.classification(labels: 2)), modelName: "tiny",
                             configuration: configuration, logger: log.logger)
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
        let (response, text) = try await exchange(method, url, body)
        return (response?.statusCode ?? -1, text)
    }

    /// One HTTP exchange with a 10 s limit: the response (its status and headers) and the body.
    func exchange(_ method: String, _ url: URL, _ body: String? = nil) async throws -> (HTTPURLResponse?, String) {
        var request = URLRequest(url: url, timeoutInterval: 10)
        request.httpMethod = method
        if let body {
            request.httpBody = Data(body.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        return try await withCheckedThrowingContinuation { c in
            URLSession.shared.dataTask(with: request) { data, response, error in
                if let error { return c.resume(throwing: error) }
                c.resume(returning: (response as? HTTPURLResponse, String(decoding: data ?? Data(), as: UTF8.self)))
            }.resume()
        }
    }

    func object(_ body: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any], body,
                      file: file, line: line)
    }

    /// The logfmt fields of a line (quoted values unescaped).
    static func fields(_ line: String) -> [String: String] {
        var fields: [String: String] = [:]
        var i = line.startIndex
        while i < line.endIndex {
            while i < line.endIndex, line[i] == " " { i = line.index(after: i) }
            guard let eq = line[i...].firstIndex(of: "=") else { break }
            let key = String(line[i ..< eq])
            i = line.index(after: eq)
            var value = ""
            if i < line.endIndex, line[i] == "\"" {
                i = line.index(after: i)
                while i < line.endIndex, line[i] != "\"" {
                    if line[i] == "\\" {
                        i = line.index(after: i)
                        switch line[i] {
                        case "n": value.append("\n")
                        case "t": value.append("\t")
                        case "r": value.append("\r")
                        default: value.append(line[i])
                        }
                    } else {
                        value.append(line[i])
                    }
                    i = line.index(after: i)
                }
                if i < line.endIndex { i = line.index(after: i) }
            } else {
                while i < line.endIndex, line[i] != " " { value.append(line[i]); i = line.index(after: i) }
            }
            fields[key] = value
        }
        return fields
    }

    /// The samples of a Prometheus text exposition: `name{labels}` (labels as written) → value; fails the test on
    /// a line that is not a comment, empty or `NAME[{LABELS}] VALUE`.
    static func samples(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> [String: Double] {
        var samples: [String: Double] = [:]
        for row in text.split(separator: "\n") where !row.hasPrefix("#") && !row.isEmpty {
            guard let space = row.lastIndex(of: " "), let value = Double(row[row.index(after: space)...]) else {
                XCTFail("not a sample: \(row)", file: file, line: line)
                continue
            }
            let key = String(row[..<space])
            let name = key.prefix { $0 != "{" }
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }),
                  key == name || (key.hasSuffix("}") && key.dropFirst(name.count).hasPrefix("{")) else {
                XCTFail("not a sample name: \(row)", file: file, line: line)
                continue
            }
            XCTAssertNil(samples[key], "\(key) twice", file: file, line: line)
            samples[key] = value
        }
        return samples
    }
}

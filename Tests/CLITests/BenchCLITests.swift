import BERT
import Foundation
import XCTest

/// `cofi bench` as a user runs it, with tiny repeats on tiny random models (`TinyModels`): the table, the JSON lines
/// with exactly the agreed keys, the baseline's speedups, T capped at the model's max positions, and bad input.
final class BenchCLITests: XCTestCase {
    var work: URL!
    func url(_ name: String) -> URL { work.appendingPathComponent(name) }

    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-bench-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        // The "compact" model is narrower and shallower than its "dense" baseline; both accept 64 positions.
        try TinyModels.write(url("small/final"), task: .classification(labels: 2), seed: 1, hidden: 16, layers: 1,
                             maxPositions: 64)
        try TinyModels.write(url("dense/best"), task: .classification(labels: 2), seed: 2, hidden: 32, layers: 3,
                             maxPositions: 64)
        let texts = (0..<40).map { i in
            (0...(i % 9)).map { TinyModels.words[($0 * 7 + i) % TinyModels.words.count] }.joined(separator: " ")
        }
        try Data((texts.joined(separator: "\n") + "\n\n").utf8).write(to: url("dev.txt"))
    }

    override func tearDownWithError() throws {
        if let work { try? FileManager.default.removeItem(at: work) }
    }

    static let workloads = ["latency_b1_t32", "latency_b1_t128", "latency_b1_t384", "throughput_b32_t128", "dev_throughput"]

    func testBenchWithBaselineWritesTableAndJSON() throws {
        let json = url("bench.jsonl")
        let (status, stdout, stderr) = try runCofi([
            "bench", "--model", url("small/final").path, "--baseline", url("dense/best").path, "--data",
            url("dev.txt").path, "--repeats", "3", "--warmup", "1", "--max-length", "16", "--json", json.path,
        ])
        XCTAssertEqual(status, 0, stderr)
        print(stdout)
        for header in ["model", "workload", "batch", "p50 ms", "p90 ms", "p99 ms", "seq/s", "runs", "speedup"] {
            XCTAssertTrue(stdout.contains(header), "table header '\(header)' missing:\n\(stdout)")
        }
        for w in Self.workloads {
            let rows = stdout.split(separator: "\n").filter { $0.contains(" \(w) ") }
            XCTAssertEqual(rows.count, 2, "one row per model for \(w):\n\(stdout)")
            XCTAssertTrue(rows.first?.hasPrefix("small/final") ?? false, stdout)
            XCTAssertTrue(rows.first?.hasSuffix("x") ?? false, "the model's row ends with its speedup:\n\(stdout)")
        }
        XCTAssertTrue(stdout.contains("peak memory of small/final:"), stdout)
        XCTAssertTrue(stdout.contains("peak memory of dense/best:"), stdout)

        let lines = try String(contentsOf: json, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], String($0))
        }
        XCTAssertEqual(lines.count, 2 * (Self.workloads.count + 1) + 1)
        let keys: Set = ["impl", "model", "workload", "batch", "seq_len", "p50_ms", "p90_ms", "p99_ms", "seq_per_s", "repeats"]
        for (k, model) in ["small/final", "dense/best"].enumerated() {
            let block = lines[(k * 6)..<(k * 6 + 6)]
            XCTAssertEqual(block.prefix(5).map { $0["workload"] as? String }, Self.workloads)
            for (line, w) in zip(block.prefix(5), Self.workloads) {
                XCTAssertEqual(Set(line.keys), keys, "\(line)")
                XCTAssertEqual(line["impl"] as? String, "cofi")
                XCTAssertEqual(line["model"] as? String, model)
                let p50 = try XCTUnwrap(line["p50_ms"] as? Double), p90 = try XCTUnwrap(line["p90_ms"] as? Double)
                let p99 = try XCTUnwrap(line["p99_ms"] as? Double)
                XCTAssertTrue(0 < p50 && p50 <= p90 && p90 <= p99, "\(line)")
                XCTAssertGreaterThan(try XCTUnwrap(line["seq_per_s"] as? Double), 0)
                switch w {
                case "latency_b1_t32": XCTAssertEqual(line["seq_len"] as? Int, 32); XCTAssertEqual(line["batch"] as? Int, 1)
                case "latency_b1_t128": XCTAssertEqual(line["seq_len"] as? Int, 64, "T capped at the max positions")
                case "latency_b1_t384": XCTAssertEqual(line["seq_len"] as? Int, 64, "T capped at the max positions")
                case "throughput_b32_t128": XCTAssertEqual(line["seq_len"] as? Int, 64); XCTAssertEqual(line["batch"] as? Int, 32)
                default:
                    XCTAssertTrue(line["seq_len"] is NSNull, "the dev set has no single length: \(line)")
                    XCTAssertEqual(line["batch"] as? Int, 32)
                }
                XCTAssertEqual(line["repeats"] as? Int, 3)
            }
            let memory = block.last!
            XCTAssertEqual(Set(memory.keys), ["impl", "model", "peak_rss_mib"])
            XCTAssertEqual(memory["model"] as? String, model)
            XCTAssertGreaterThan(try XCTUnwrap(memory["peak_rss_mib"] as? Double), 1)
        }
        let speedup = try XCTUnwrap(lines.last?["speedup"] as? [String: Double], "\(lines.last!)")
        XCTAssertEqual(Set(lines.last!.keys), ["speedup"])
        XCTAssertEqual(Set(speedup.keys), Set(Self.workloads))
        for (w, r) in speedup { XCTAssertGreaterThan(r, 0, w) }
    }

    func testBenchWithoutBaselineHasNoSpeedup() throws {
        let json = url("one.jsonl")
        let (status, stdout, stderr) = try runCofi([
            "bench", "--model", url("small/final").path, "--data", url("dev.txt").path, "--repeats", "2", "--warmup",
            "0", "--json", json.path, "--name", "tiny",
        ])
        XCTAssertEqual(status, 0, stderr)
        XCTAssertFalse(stdout.contains("speedup"), stdout)
        let text = try String(contentsOf: json, encoding: .utf8)
        XCTAssertEqual(text.split(separator: "\n").count, Self.workloads.count + 1, text)
        XCTAssertFalse(text.contains("speedup"))
        XCTAssertTrue(text.contains(#""model":"tiny""#), text)
    }

    func testWorkloadsPicksSome() throws {
        let json = url("some.jsonl")
        let (status, _, stderr) = try runCofi([
            "bench", "--model", url("small/final").path, "--data", url("missing.txt").path, "--repeats", "1",
            "--warmup", "0", "--json", json.path, "--workloads", "latency_b1_t32,latency_b1_t128",
        ])
        XCTAssertEqual(status, 0, stderr)
        let text = try String(contentsOf: json, encoding: .utf8)
        let workloads = text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["workload"] as? String
        }
        // Without dev_throughput the dev set is never read, so a missing --data file is no error.
        XCTAssertEqual(workloads, ["latency_b1_t32", "latency_b1_t128"], text)
    }

    func testBadInputIsNamed() throws {
        func expectFailure(_ args: [String], _ fragment: String, line: UInt = #line) throws {
            let (status, _, stderr) = try runCofi(["bench"] + args + ["--repeats", "1", "--data", url("dev.txt").path])
            XCTAssertNotEqual(status, 0, line: line)
            XCTAssertTrue(stderr.contains(fragment), "expected '\(fragment)' in: \(stderr)", line: line)
        }
        try expectFailure(["--model", url("missing").path], "no such directory")
        try expectFailure(["--model", url("small/final").path, "--baseline", url("missing").path], "no such directory")
        try expectFailure(["--model", url("small/final").path, "--max-length", "100"], "exceeds the max_position_embeddings")
        try expectFailure(["--model", url("small/final").path, "--task", "sst2"], "either --task NAME or --data FILE")
        try expectFailure(["--model", url("small/final").path, "--workloads", "latency_b1_t32,latency_b1_t64"],
                          "unknown workload 'latency_b1_t64'")
        try Data("good\n{\"text\": 1}\n".utf8).write(to: url("bad.jsonl"))
        let (status, _, stderr) = try runCofi(["bench", "--model", url("small/final").path, "--data", url("bad.jsonl").path])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(stderr.contains("bad.jsonl line 1: malformed JSON"), stderr)
    }
}

import Foundation
import Tensor
import XCTest

/// `mpirun -np 2 cofi finetune|prune …` against one process with the same arguments, on tiny random models: the
/// per-step losses agree to 1e-4 relative, the kept structure and dev metric are the same; a resume with another
/// rank count continues the run; a rank with other arguments or a missing file is named.
///
/// Needs Open MPI (`mpirun` and `pkg-config ompi-c`; skipped without them). It builds cofi with the MPI trait into
/// `.build/mpi` (or uses the build in `$COFI_MPI_PRODUCTS`), a few minutes the first time.
final class MPICLITests: XCTestCase {
    var work: URL!
    func url(_ name: String) -> URL { work.appendingPathComponent(name) }
    static let words = ["good", "great", "fun", "loved", "bad", "dull", "awful", "bored", "film", "plot", "a", "the"]

    nonisolated(unsafe) static var binary: URL?
    nonisolated(unsafe) static var buildFailure: String?

    /// The cofi built with the MPI trait (built once per test run).
    func mpiCofi() throws -> URL {
        if let b = Self.binary { return b }
        if let failure = Self.buildFailure { throw XCTSkip(failure) }
        if let dir = ProcessInfo.processInfo.environment["COFI_MPI_PRODUCTS"] {
            Self.binary = URL(fileURLWithPath: dir).appendingPathComponent("cofi")
            return Self.binary!
        }
        guard Self.shell("command -v mpirun && pkg-config --exists ompi-c").status == 0 else {
            Self.buildFailure = "Open MPI is not installed (apt-get install libopenmpi-dev openmpi-bin): no MPI tests"
            throw XCTSkip(Self.buildFailure!)
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let build = root.appendingPathComponent(".build/mpi")
        let r = Self.shell("cd '\(root.path)' && swift build --traits MPI --build-path '\(build.path)' --product cofi 2>&1")
        guard r.status == 0 else {
            XCTFail("building cofi with --traits MPI failed:\n\(r.output.suffix(3000))")
            Self.buildFailure = "the MPI build failed"
            throw XCTSkip("the MPI build failed")
        }
        Self.binary = build.appendingPathComponent("debug/cofi")
        return Self.binary!
    }

    static func shell(_ command: String) -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        do { try p.run() } catch { return (-1, "\(error)") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// mpirun's flags: as root it needs leave, and containers often forbid the single-copy shared-memory path.
    static let mpirunFlags = ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
                              "--mca", "btl_vader_single_copy_mechanism", "none"]

    /// A started `cofi args` on `ranks` ranks (plain, without mpirun, for 0), or an MPMD line of per-rank
    /// argument lists; `finish` waits and returns (exit status, stdout, stderr).
    final class Run: @unchecked Sendable {
        let process = Process()
        private var out = Data(), err = Data()
        private let done = DispatchGroup()

        init(_ executable: URL, _ arguments: [String]) throws {
            process.executableURL = executable
            process.arguments = arguments
            let o = Pipe(), e = Pipe()
            process.standardOutput = o
            process.standardError = e
            try process.run()
            for (pipe, isOut) in [(o, true), (e, false)] {
                done.enter()
                Thread { [self] in
                    let data = pipe.fileHandleForReading.readDataToEndOfFile()
                    if isOut { out = data } else { err = data }
                    done.leave()
                }.start()
            }
        }

        func finish() -> (Int32, String, String) {
            done.wait()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
        }
    }

    func start(ranks: Int, _ args: [String], perRank: [[String]]? = nil) throws -> Run {
        let cofi = try mpiCofi()
        if ranks == 0 { return try Run(cofi, args) }
        let env = URL(fileURLWithPath: "/usr/bin/env")
        if let perRank {
            return try Run(env, ["mpirun"] + Self.mpirunFlags
                + perRank.enumerated().flatMap { i, a in (i == 0 ? [] : [":"]) + ["-np", "1", cofi.path] + a })
        }
        return try Run(env, ["mpirun"] + Self.mpirunFlags + ["-np", "\(ranks)", cofi.path] + args)
    }

    func run(ranks: Int, _ args: [String], perRank: [[String]]? = nil) throws -> (Int32, String, String) {
        try start(ranks: ranks, args, perRank: perRank).finish()
    }

    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-mpi-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        var rows = ["text,label"], dev = ["text,label"]
        for i in 0..<26 {
            let good = i % 2 == 0
            let w = good ? ["good", "great", "fun", "loved"] : ["bad", "dull", "awful", "bored"]
            let filler = Array(repeating: "a", count: i % 5).joined(separator: " ")
            let line = "\"the film \(w[i % 4]) \(filler) plot\",\(good ? "positive" : "negative")"
            (i < 16 ? { rows.append($0) } : { dev.append($0) })(line)
        }
        try (rows.joined(separator: "\n") + "\n").write(to: url("train.csv"), atomically: true, encoding: .utf8)
        try (dev.joined(separator: "\n") + "\n").write(to: url("dev.csv"), atomically: true, encoding: .utf8)
        _ = try writeTinyModel(at: url("teacher"), vocabulary: Self.words, seed: 1, head: true)
        _ = try writeTinyModel(at: url("student"), vocabulary: Self.words, seed: 2, head: false)
    }

    override func tearDownWithError() throws {
        if let work, ProcessInfo.processInfo.environment["COFI_KEEP_TEST_FILES"] == nil {
            try? FileManager.default.removeItem(at: work)
        }
    }

    /// The `train` records' (step, loss) and the `eval` records' (step, value) of a metrics.jsonl.
    func records(_ file: URL) throws -> (losses: [Int: Double], evals: [Int: Double]) {
        var losses: [Int: Double] = [:], evals: [Int: Double] = [:]
        for line in try String(contentsOf: file, encoding: .utf8).split(separator: "\n") {
            let r = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            guard let step = r["step"] as? Int else { continue }
            if r["event"] as? String == "train" { losses[step] = r["loss"] as? Double }
            if r["event"] as? String == "eval" { evals[step] = r["value"] as? Double }
        }
        return (losses, evals)
    }

    func assertSameLosses(_ a: URL, _ b: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = try records(a), y = try records(b)
        XCTAssertFalse(x.losses.isEmpty, "no train records in \(a.path)", file: file, line: line)
        XCTAssertEqual(Set(x.losses.keys), Set(y.losses.keys), file: file, line: line)
        for (step, l) in x.losses {
            let m = y.losses[step] ?? .nan
            XCTAssertTrue(abs(l - m) <= 1e-4 * max(abs(l), 1e-6), "step \(step): \(l) vs \(m) (\(a.lastPathComponent))",
                          file: file, line: line)
        }
        XCTAssertEqual(Set(x.evals.keys), Set(y.evals.keys), file: file, line: line)
        for (step, v) in x.evals {
            XCTAssertEqual(v, y.evals[step] ?? .nan, accuracy: 0.002, "eval at step \(step)", file: file, line: line)
        }
    }

    var finetuneArgs: [String] {
        // Batch 5 over 16 examples: the last batch of each epoch has 1 row, so rank 1's shard is empty there.
        ["finetune", "--model", url("teacher").path, "--train", url("train.csv").path, "--dev", url("dev.csv").path,
         "--max-length", "12", "--batch-size", "5", "--epochs", "3", "--lr", "1e-3", "--logging-steps", "1",
         "--eval-steps", "3", "--check-every", "2", "--bucket-mb", "0.002"]
    }

    func testTwoRanksFineTuneAsOneProcess() throws {
        let (s1, _, e1) = try run(ranks: 0, finetuneArgs + ["--out", url("one").path])
        XCTAssertEqual(s1, 0, e1)
        let (s2, o2, e2) = try run(ranks: 2, finetuneArgs + ["--out", url("two").path])
        XCTAssertEqual(s2, 0, e2)
        XCTAssertTrue(o2.contains("best accuracy"), o2)
        // Only rank 0 prints.
        XCTAssertEqual(o2.components(separatedBy: "latest checkpoint").count, 2, o2)
        try assertSameLosses(url("one/metrics.jsonl"), url("two/metrics.jsonl"))
        // The best models agree to float rounding (the ranks' gradient sums are added in another order) — except
        // the attention key biases: softmax ignores a shift shared by a query's scores, so their exact gradient is
        // zero, the computed one is rounding noise (~1e-9), and AdamW's normalised steps turn that noise into moves
        // of up to ~0.1 lr a step in either run (measured: 1e-4 and 4e-4 apart after 12 steps at lr 1e-3).
        let one = try SafetensorsFile(contentsOf: url("one/best/model.safetensors"))
        let two = try SafetensorsFile(contentsOf: url("two/best/model.safetensors"))
        XCTAssertEqual(one.names.sorted(), two.names.sorted())
        let compared = one.names.filter { !$0.hasSuffix("attention.self.key.bias") }
        XCTAssertGreaterThan(compared.count, 20)
        let worst = try maxError(compared.map { try one.tensor($0).maxAbsDifference(two.tensor($0)) })
        XCTAssertLessThanOrEqual(worst, 1e-5, "best/ weights of 1 process and 2 ranks")
    }

    /// Extractive QA on 2 ranks: span targets sharded, SQuAD's logits gathered from the ranks for the F1.
    func testTwoRanksFineTuneSQuADAsOneProcess() throws {
        let squad = url("squad")
        try writeSQuADSample(to: squad)
        _ = try writeTinyModel(at: url("qa"), vocabulary: Self.words, seed: 4, head: true, span: true)
        let args = ["finetune", "--model", url("qa").path, "--task", "squad", "--data", squad.path, "--max-length", "32",
                    "--doc-stride", "8", "--batch-size", "7", "--epochs", "2", "--lr", "1e-3", "--logging-steps", "1",
                    "--eval-steps", "2", "--eval-batch-size", "3"]
        let (s1, _, e1) = try run(ranks: 0, args + ["--out", url("one").path])
        XCTAssertEqual(s1, 0, e1)
        let (s2, _, e2) = try run(ranks: 2, args + ["--out", url("two").path])
        XCTAssertEqual(s2, 0, e2)
        try assertSameLosses(url("one/metrics.jsonl"), url("two/metrics.jsonl"))
    }

    /// The step of the last `train` record in `metrics`, or 0.
    func lastStep(_ metrics: URL) -> Int {
        ((try? records(metrics))?.losses.keys.max()) ?? 0
    }

    /// A run is stopped and continued with another rank count three times — SIGUSR1 to mpirun (forwarded to every
    /// rank: each stops after the same step, rank 0 saves), Ctrl-C of a single process (the same save), and
    /// Ctrl-C of mpirun (SIGTERM to the ranks, then SIGKILL: the job ends within seconds and the last checkpoint
    /// stays intact) — and then finishes on 2 ranks: every step's loss is the uninterrupted run's (same global
    /// batch, order and schedule for any rank count).
    func testInterruptedRunResumesOnAnotherRankCount() throws {
        let args = finetuneArgs.map { $0 == "3" ? "60" : $0 }
        let (s0, _, e0) = try run(ranks: 0, args + ["--out", url("whole").path])
        XCTAssertEqual(s0, 0, e0)
        let out = url("parts"), metrics = out.appendingPathComponent("metrics.jsonl")
        func checkpointStep() throws -> Int {
            let state = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent(
                "checkpoint/trainer_state.json"))) as! [String: Any]
            return state["global_step"] as? Int ?? -1
        }
        var reached = 0
        for (ranks, signal) in [(2, SIGUSR1), (0, SIGINT), (2, SIGINT)] {
            let r = try start(ranks: ranks, args + ["--out", out.path] + (reached > 0 ? ["--resume"] : []))
            let target = reached + 20
            let deadline = Date().addingTimeInterval(120)
            while lastStep(metrics) < target && r.process.isRunning && Date() < deadline { usleep(10_000) }
            kill(r.process.processIdentifier, signal)
            let stopped = Date()
            let (status, _, stderr) = r.finish()
            XCTAssertLessThan(Date().timeIntervalSince(stopped), 15, "the job took long to stop")
            XCTAssertNotEqual(status, 0, "the run was not stopped: \(stderr)")
            let step = try checkpointStep()
            XCTAssertLessThan(step, 240, stderr)
            if ranks == 0 || signal == SIGUSR1 {
                XCTAssertTrue(stderr.contains("stopped on request after step \(step) of 240"), stderr)
                XCTAssertGreaterThanOrEqual(step, target)
            }
            reached = max(step, reached)
        }
        let (s3, _, e3) = try run(ranks: 2, args + ["--out", out.path, "--resume"])
        XCTAssertEqual(s3, 0, e3)
        try assertSameLosses(url("whole/metrics.jsonl"), metrics)
        XCTAssertEqual(lastStep(metrics), 240)
    }

    /// A rank killed mid-run (kill -9) makes mpirun end the job within seconds, naming the rank; the last
    /// checkpoint is intact and the run continues from it on 2 ranks to the uninterrupted run's losses.
    func testKilledRankEndsTheJobAndTheRunResumes() throws {
        let args = finetuneArgs.map { $0 == "3" ? "60" : $0 }
        let out = url("killed"), metrics = out.appendingPathComponent("metrics.jsonl")
        let r = try start(ranks: 2, args + ["--out", out.path])
        let deadline = Date().addingTimeInterval(120)
        while lastStep(metrics) < 20 && r.process.isRunning && Date() < deadline { usleep(10_000) }
        // Rank 1's process: the child of mpirun whose environment says so.
        let ranks = Self.shell("pgrep -f '\(try mpiCofi().path) finetune'").output.split(separator: "\n").compactMap { Int32($0) }
        let rank1 = ranks.first { pid in
            let env = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))) ?? Data()
            return String(decoding: env, as: UTF8.self).contains("OMPI_COMM_WORLD_RANK=1\u{0}")
        }
        XCTAssertNotNil(rank1, "no rank 1 among \(ranks)")
        if let rank1 { kill(rank1, SIGKILL) }
        let killed = Date()
        let (status, _, stderr) = r.finish()
        XCTAssertLessThan(Date().timeIntervalSince(killed), 15, "the job took long to stop")
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(stderr.contains("rank 1"), stderr)
        let (s2, _, e2) = try run(ranks: 2, args + ["--out", out.path, "--resume"])
        XCTAssertEqual(s2, 0, e2)
        let (s3, _, e3) = try run(ranks: 0, args + ["--out", url("whole").path])
        XCTAssertEqual(s3, 0, e3)
        try assertSameLosses(url("whole/metrics.jsonl"), metrics)
    }

    /// With the default controller (tracking, cubic ramp): λ is solved from the reduced gradients on every rank.
    func testTwoRanksPruneAsOneProcess() throws {
        let args = ["prune", "--teacher", url("teacher").path, "--student", url("student").path,
                    "--train", url("train.csv").path, "--dev", url("dev.csv").path, "--max-length", "12",
                    "--batch-size", "5", "--target-sparsity", "0.5", "--epochs", "8", "--pre-pruning-epochs", "1",
                    "--warmup-epochs", "2", "--finetune-epochs", "1", "--sparsity-epsilon", "0.05",
                    "--eval-steps", "4", "--lr", "1e-3", "--logging-steps", "1", "--check-every", "3"]
        func scratch() -> Set<String> {
            Set(((try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? [])
                .filter { $0.hasPrefix("cofi-rank") })
        }
        let scratchBefore = scratch()
        let (s1, o1, e1) = try run(ranks: 0, args + ["--out", url("one").path])
        XCTAssertEqual(s1, 0, e1)
        let (s2, o2, e2) = try run(ranks: 2, args + ["--out", url("two").path])
        XCTAssertEqual(s2, 0, e2)
        for stage in ["preprune", "prune", "finetune"] {
            try assertSameLosses(url("one/\(stage)/metrics.jsonl"), url("two/\(stage)/metrics.jsonl"))
        }
        func summary(_ run: String) throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(contentsOf: url("\(run)/summary.json"))) as! [String: Any]
        }
        let a = try summary("one"), b = try summary("two")
        XCTAssertEqual(a["exactSparsity"] as? Double, b["exactSparsity"] as? Double)
        XCTAssertEqual(a["layers"] as? NSArray, b["layers"] as? NSArray)
        XCTAssertNotNil(a["layers"] as? NSArray)
        XCTAssertEqual(a["hiddenSize"] as? Int, b["hiddenSize"] as? Int)
        XCTAssertEqual(a["finalMetric"] as? Double ?? .nan, b["finalMetric"] as? Double ?? .nan, accuracy: 0.002)
        // The printed summaries agree except for the wall times (which round to different seconds on a busy machine).
        func printed(_ text: String, _ run: String) -> String {
            text.replacingOccurrences(of: url(run).path, with: "OUT").split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.hasPrefix("wall time:") }.joined(separator: "\n")
        }
        XCTAssertEqual(printed(o1, "one"), printed(o2, "two"))
        XCTAssertTrue(o1.contains("wall time:"), o1)
        // Rank 0 alone wrote the output; no scratch copy is left behind.
        let leftovers = scratch().subtracting(scratchBefore)
        XCTAssertEqual(leftovers, [], "scratch directories left: \(leftovers)")
    }

    /// The default build (no MPI trait) started by mpirun as one of several ranks says how to build the MPI one.
    func testBuildWithoutMPIRefusesToBeOneOfSeveralRanks() throws {
        guard Self.shell("command -v mpirun").status == 0 else { throw XCTSkip("no mpirun") }
        let (status, output) = Self.shell((["mpirun"] + Self.mpirunFlags + ["-np", "2",
            productsDirectory.appendingPathComponent("cofi").path] + finetuneArgs + ["--out", url("no").path])
            .map { "'\($0)'" }.joined(separator: " "))
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(output.contains("built without MPI support"), output)
        XCTAssertTrue(output.contains("--traits MPI"), output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: url("no").path))
    }

    func testMismatchedRanksAreNamed() throws {
        // Rank 1 reads another training file: the arguments differ.
        var other = finetuneArgs + ["--out", url("x").path]
        try FileManager.default.copyItem(at: url("train.csv"), to: url("train2.csv"))
        other[other.firstIndex(of: url("train.csv").path)!] = url("train2.csv").path
        let (s1, _, e1) = try run(ranks: 2, [], perRank: [finetuneArgs + ["--out", url("x").path], other])
        XCTAssertNotEqual(s1, 0)
        XCTAssertTrue(e1.contains("the run's arguments differs between the ranks: rank 1"), e1)

        // Rank 1's file is missing: its error, naming the rank and the file, stops both.
        var missing = finetuneArgs + ["--out", url("y").path]
        missing[missing.firstIndex(of: url("train.csv").path)!] = url("nowhere.csv").path
        let (s2, _, e2) = try run(ranks: 2, [], perRank: [finetuneArgs + ["--out", url("y").path], missing])
        XCTAssertNotEqual(s2, 0)
        XCTAssertTrue(e2.contains("rank 1 (host"), e2)
        XCTAssertTrue(e2.contains("nowhere.csv"), e2)
    }
}

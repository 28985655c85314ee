import BERT
import Foundation
import Runtime
import Tasks
import XCTest

/// The model fuzz test of issue 13: every case of `ModelFuzz.corpus` — a corrupted copy of a small dense or compact
/// model directory — is loaded the way `cofi predict`, `bench` and `serve` load a model
/// (`ModelDirectory.predictor`: config, weights, tokenizer, then the inference engine) and, when it loads, run on
/// three inputs. Each outcome is classified:
///
/// - clean error: a thrown error whose description names the broken file (or, where the case is a
///   contradiction between config.json and the tensors, either of them);
/// - correct load: the case is harmless and the model loaded equals the original — the same parameters
///   (`BertModel.load(directory:)`, bit for bit), shape, head, label names and predictions;
/// - error at prediction: it loads, but the prediction of an input the original answers fails (a NaN weight,
///   say) — not silent, though a check at load would be better;
/// - error without the file: a thrown error that names neither file;
/// - silent acceptance: a broken directory loads and predicts, or a harmless change loads as a different model;
/// - hang: no answer within `deadline` seconds; crash: the process died.
///
/// The cases run in a child process (this test binary, running `testCorpusChild`) with its data segment limited
/// to 4 GiB, so that a crash or an unbounded allocation cannot take the test down and a hang can be killed: the
/// parent watches the child's progress file, and when the child dies or stalls it records the case and starts a
/// new child at the next one.
///
/// The table of outcomes by family, and every case that is neither a clean error nor a correct load, are printed
/// at the end. Crashes, hangs and harness failures always fail the test, the baselines must load correctly, and
/// the generator must give at least 500 cases, each of which changes its fixture.
///
/// Every outcome other than a clean error or a correct load fails the test (an error at prediction too: a model
/// that cannot answer must be refused at load).
final class ModelFuzzTests: XCTestCase {
    enum Outcome: String, CaseIterable {
        case cleanError = "clean error"
        case correctLoad = "correct load"
        case lateError = "error at prediction"
        case unnamedError = "error without the file"
        case silent = "silent acceptance"
        case hang
        case crash
        case harness = "harness failure"
    }

    /// Seconds a case may take (the first case of a child also waits for the process to start).
    static let deadline: TimeInterval = 5
    static let startupDeadline: TimeInterval = 60


    // MARK: - The parent

    func testModelCorpus() throws {
        let started = Date()
        let bases = try ModelFuzz.bases()
        let cases = ModelFuzz.corpus(bases)

        // The generator itself: enough cases, unique names, and every case really changes its fixture.
        XCTAssertGreaterThanOrEqual(cases.count, 500)
        XCTAssertEqual(Set(cases.map(\.name)).count, cases.count, "case names must be unique")
        for c in cases where c.family != "baseline" {
            var files = bases[c.fixture]!.files
            c.mutate(&files)
            XCTAssertNotEqual(files, bases[c.fixture]!.files, "\(c.name) leaves the fixture as it is")
            if c.expect == .reject {
                XCTAssertFalse(files.means(bases[c.fixture]!.files), "\(c.name) only re-encodes the fixture")
            }
        }

        let results = try runInChildren(cases)
        let elapsed = Date().timeIntervalSince(started)
        print(Self.table(cases, results, seconds: elapsed))

        for (c, r) in zip(cases, results) where c.family == "baseline" {
            XCTAssertEqual(r.outcome, .correctLoad, "\(c.name): the fixture itself must load: \(r.detail)")
        }
        for (c, r) in zip(cases, results) where ![.cleanError, .correctLoad].contains(r.outcome) {
            XCTFail("\(c.name): \(r.outcome.rawValue): \(r.detail)")
        }
    }

    struct CaseResult {
        var outcome: Outcome
        var detail: String
    }

    /// Runs `cases` in child processes, restarting after a crash or a hang; one result per case.
    func runInChildren(_ cases: [ModelFuzz.Case]) throws -> [CaseResult] {
        let fm = FileManager.default
        let scratch = fm.temporaryDirectory.appendingPathComponent("cofi-model-fuzz-\(UUID().uuidString)")
        try fm.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: scratch) }
        var results = [CaseResult?](repeating: nil, count: cases.count)
        var next = 0
        var spawn = 0
        while next < cases.count {
            spawn += 1
            let progress = scratch.appendingPathComponent("progress-\(spawn).txt")
            let log = scratch.appendingPathComponent("log-\(spawn).txt")
            guard fm.createFile(atPath: progress.path, contents: nil), fm.createFile(atPath: log.path, contents: nil) else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: scratch.path])
            }
            let child = try Self.startChild(from: next, count: cases.count, progress: progress, log: log,
                                            scratch: scratch.appendingPathComponent("cases-\(spawn)"))
            let reader = try FileHandle(forReadingFrom: progress)
            defer { try? reader.close() }
            var pending = ""
            var current: Int?
            var lastProgress = Date()
            var firstCase = true
            func poll() {
                pending += String(decoding: reader.readDataToEndOfFile(), as: UTF8.self)
                while let newline = pending.firstIndex(of: "\n") {
                    let fields = pending[..<newline].split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                    pending = String(pending[pending.index(after: newline)...])
                    lastProgress = Date()
                    guard let k = fields.count >= 2 ? Int(fields[1]) : nil else { continue }
                    if fields[0] == "B" {
                        current = k
                        firstCase = false
                    } else if fields[0] == "E", fields.count >= 4 {
                        results[k] = CaseResult(outcome: Outcome(rawValue: fields[2]) ?? .harness, detail: fields[3])
                        current = nil
                        next = k + 1
                    }
                }
            }
            while true {
                poll()
                if !child.isRunning {
                    child.waitUntilExit()
                    poll()
                    if let k = current {
                        let signal = child.terminationReason == .uncaughtSignal ? "signal \(child.terminationStatus)"
                                                                                : "exit status \(child.terminationStatus)"
                        results[k] = CaseResult(outcome: .crash, detail: "\(signal): \(Self.lastWords(log))")
                        next = k + 1
                    } else if next < cases.count {
                        results[next] = CaseResult(outcome: .harness, detail: "the child stopped before case \(next) "
                                                + "(exit status \(child.terminationStatus)): \(Self.lastWords(log))")
                        return results.map { $0 ?? CaseResult(outcome: .harness, detail: "not run") }
                    }
                    break
                }
                let limit = firstCase ? Self.startupDeadline : Self.deadline
                if Date().timeIntervalSince(lastProgress) > limit {
                    kill(child.processIdentifier, SIGKILL)
                    child.waitUntilExit()
                    poll()
                    let k = current ?? next
                    results[k] = CaseResult(outcome: .hang, detail: "no answer within \(Int(limit)) s; killed")
                    next = k + 1
                    break
                }
                usleep(10_000)
            }
        }
        return results.map { $0 ?? CaseResult(outcome: .harness, detail: "not run") }
    }

    /// Starts this test binary running `testCorpusChild` from case `from`, its data segment limited to 4 GiB.
    static func startChild(from: Int, count: Int, progress: URL, log: URL, scratch: URL) throws -> Process {
        let test = "RuntimeTests.ModelFuzzTests/testCorpusChild"
        #if os(macOS)
        let command = [ProcessInfo.processInfo.arguments[0], "-XCTest", test, Bundle(for: ModelFuzzTests.self).bundlePath]
        #else
        let command = [URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).path, test]
        #endif
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "ulimit -d 4194304 2>/dev/null; exec \"$0\" \"$@\""] + command
        var environment = ProcessInfo.processInfo.environment
        environment["COFI_FUZZ_CHILD_FROM"] = "\(from)"
        environment["COFI_FUZZ_CHILD_COUNT"] = "\(count)"
        environment["COFI_FUZZ_CHILD_PROGRESS"] = progress.path
        environment["COFI_FUZZ_CHILD_SCRATCH"] = scratch.path
        // A crash should end the child at once, not after the backtracer has symbolicated it.
        environment["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = environment
        let output = try FileHandle(forWritingTo: log)
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try output.close()
        return process
    }

    /// The child's last message worth quoting: a fatal error if it printed one, else its last line.
    static func lastWords(_ log: URL) -> String {
        let lines = String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self)
            .split(separator: "\n").map(String.init)
        let line = lines.last { $0.contains("Fatal error") || $0.contains("fatal error") }
            ?? lines.last { !$0.hasPrefix("Test ") && !$0.isEmpty } ?? "no output"
        return sanitized(line)
    }

    /// The classification table, then every case that is not a clean error or a correct load.
    static func table(_ cases: [ModelFuzz.Case], _ results: [CaseResult], seconds: Double) -> String {
        let outcomes = Outcome.allCases
        var families: [String] = []
        var counts: [String: [Outcome: Int]] = [:]
        for (c, r) in zip(cases, results) {
            if counts[c.family] == nil { families.append(c.family); counts[c.family] = [:] }
            counts[c.family]![r.outcome, default: 0] += 1
        }
        let header = ["family"] + outcomes.map(\.rawValue) + ["total"]
        var rows = families.map { f in [f] + outcomes.map { "\(counts[f]![$0] ?? 0)" } + ["\(counts[f]!.values.reduce(0, +))"] }
        rows.append(["all"] + outcomes.map { o in "\(results.filter { $0.outcome == o }.count)" } + ["\(results.count)"])
        let widths = header.indices.map { i in ([header] + rows).map { $0[i].count }.max()! }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, s in i == 0 ? s.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                                                   : String(repeating: " ", count: widths[i] - s.count) + s }
                .joined(separator: " | ")
        }
        var out = "model fuzz: \(cases.count) cases in \(String(format: "%.1f", seconds)) s"
            + "\n" + line(header) + "\n"
            + line(widths.map { String(repeating: "-", count: $0) }) + "\n" + rows.map(line).joined(separator: "\n") + "\n"
        let failing = zip(cases, results).filter { ![.cleanError, .correctLoad].contains($0.1.outcome) }
        if !failing.isEmpty {
            out += "cases that are not a clean error or a correct load:\n"
            out += failing.map { "  [\($0.1.outcome.rawValue)] \($0.0.name): \($0.1.detail)" }.joined(separator: "\n") + "\n"
        }
        return out
    }

    static func sanitized(_ s: String, limit: Int = 240) -> String {
        let one = s.replacingOccurrences(of: "\t", with: " ").replacingOccurrences(of: "\n", with: " ")
        return one.count > limit ? String(one.prefix(limit)) + "…" : one
    }

    // MARK: - The child

    /// Runs the cases from `COFI_FUZZ_CHILD_FROM` on, writing "B k" before and "E k outcome detail" after each to
    /// `COFI_FUZZ_CHILD_PROGRESS`. Only `testModelCorpus` starts it; skipped otherwise.
    func testCorpusChild() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let progressPath = environment["COFI_FUZZ_CHILD_PROGRESS"], let from = environment["COFI_FUZZ_CHILD_FROM"].flatMap(Int.init),
              let scratchPath = environment["COFI_FUZZ_CHILD_SCRATCH"] else {
            throw XCTSkip("the child process of testModelCorpus; it runs only when that test starts it")
        }
        let progress = try XCTUnwrap(FileHandle(forWritingAtPath: progressPath))
        progress.seekToEndOfFile()
        func write(_ s: String) { progress.write(Data(s.utf8)) }
        let scratch = URL(fileURLWithPath: scratchPath)
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }

        let bases = try ModelFuzz.bases()
        let cases = ModelFuzz.corpus(bases)
        guard cases.count == environment["COFI_FUZZ_CHILD_COUNT"].flatMap(Int.init) else {
            write("B\t\(from)\nE\t\(from)\t\(Outcome.harness.rawValue)\tthe child built \(cases.count) cases, the parent another number\n")
            return
        }
        var references: [ModelFuzz.Fixture: Reference] = [:]
        for (fixture, base) in bases {
            references[fixture] = Reference(base: base, directory: scratch.appendingPathComponent("reference-\(fixture.rawValue)"))
        }
        for k in from..<cases.count {
            write("B\t\(k)\n")
            let dir = scratch.appendingPathComponent("case-\(k)")
            let r = Self.run(cases[k], base: bases[cases[k].fixture]!, reference: references[cases[k].fixture]!, directory: dir)
            try? FileManager.default.removeItem(at: dir)
            write("E\t\(k)\t\(r.outcome.rawValue)\t\(Self.sanitized(r.detail))\n")
        }
    }

    /// What the unchanged fixture gives: its parameters (as built in memory) and its predictions (as loaded).
    struct Reference {
        let model: BertModel
        let parameters: [String: [Float]]
        let predictions: Swift.Result<Answers, Error>

        init(base: ModelFuzz.Base, directory: URL) {
            model = base.model
            parameters = Dictionary(uniqueKeysWithValues: base.model.namedParameters.map { ($0.0, $0.1.value.scalars) })
            predictions = Swift.Result {
                try base.files.write(to: directory)
                return try Answers(ModelDirectory.predictor(directory, options: PredictorOptions(), threads: 1))
            }
        }
    }

    /// A predictor's answers to the probes: each the label and the probabilities in class order (a regression
    /// head: no label and the score), or its error.
    struct Answers {
        var labels: [String]
        var answers: [Swift.Result<(label: String?, values: [Float]), FuzzPredictionError>]

        init(_ predictor: Predictor) {
            labels = predictor.labels
            let inputs = ModelFuzz.probes.map { PredictorInput.text($0) } + [.pair(ModelFuzz.probePair.0, ModelFuzz.probePair.1)]
            let labels = predictor.labels
            answers = predictor.predict(inputs).map { p in
                if let error = p.error { return .failure(FuzzPredictionError(message: error)) }
                if let probabilities = p.probabilities { return .success((p.label, labels.map { probabilities[$0] ?? .nan })) }
                if let score = p.score { return .success((nil, [score])) }
                return .failure(FuzzPredictionError(message: "neither probabilities nor a score in \(p)"))
            }
        }

        var firstError: String? {
            for a in answers { if case .failure(let e) = a { return e.message } }
            return nil
        }

        /// "positive 0.87, negative 0.51, …": the answers, for messages.
        var summary: String {
            answers.map { a in
                switch a {
                case .success(let s): return "\(s.label ?? "score") \(String(format: "%.2f", s.values.max() ?? .nan))"
                case .failure(let e): return "error \(e.message)"
                }
            }.joined(separator: ", ")
        }

        /// Nil when `self` equals `other` (label names too, unless `namesMayDiffer`); else what differs.
        func difference(from other: Answers, namesMayDiffer: Bool) -> String? {
            if !namesMayDiffer && labels != other.labels { return "label names \(labels), originally \(other.labels)" }
            for (a, b) in zip(answers, other.answers) {
                guard case .success(let x) = a, case .success(let y) = b else { return "an answer failed" }
                let close = x.values.count == y.values.count && (x.label == nil) == (y.label == nil)
                    && zip(x.values, y.values).allSatisfy { abs($0 - $1) <= 1e-6 }
                if !close || (!namesMayDiffer && x.label != y.label) {
                    return "predicts \(summary), originally \(other.summary)"
                }
            }
            return nil
        }
    }

    struct FuzzPredictionError: Error {
        let message: String
    }

    /// Writes and loads one case; see the type's notes for the outcomes.
    static func run(_ c: ModelFuzz.Case, base: ModelFuzz.Base, reference: Reference, directory: URL) -> CaseResult {
        guard case .success(let original) = reference.predictions else {
            return CaseResult(outcome: .harness, detail: "the unchanged fixture does not load: \(reference.predictions)")
        }
        var files = base.files
        c.mutate(&files)
        do { try files.write(to: directory) } catch {
            return CaseResult(outcome: .harness, detail: "cannot write the case: \(error)")
        }
        let answers: Answers
        do {
            answers = Answers(try ModelDirectory.predictor(directory, options: PredictorOptions(), threads: 1))
        } catch {
            let text = "\(error)"
            let named = c.blame.contains { name in
                name.isEmpty ? text.contains(directory.path) : text.contains(name)
            }
            return CaseResult(outcome: named ? .cleanError : .unnamedError, detail: text.replacingOccurrences(of: directory.path, with: "DIR"))
        }
        if let message = answers.firstError, original.firstError == nil {
            return CaseResult(outcome: .lateError, detail: "loads; then \(message)")
        }
        // It loaded: compare with the original.
        var differences: [String] = []
        do {
            let model = try BertModel.load(directory: directory)
            if model.shape != reference.model.shape { differences.append("shape \(model.shape.layers), originally \(reference.model.shape.layers)") }
            if model.task != reference.model.task { differences.append("head \(String(describing: model.task)), originally \(String(describing: reference.model.task))") }
            let parameters = Dictionary(uniqueKeysWithValues: model.namedParameters.map { ($0.0, $0.1.value.scalars) })
            if Set(parameters.keys) != Set(reference.parameters.keys) {
                differences.append("parameters \(Set(parameters.keys).symmetricDifference(reference.parameters.keys).sorted()) differ in presence")
            } else if let name = parameters.keys.sorted().first(where: { parameters[$0]! != reference.parameters[$0]! }) {
                differences.append("parameter \(name) differs")
            }
        } catch {
            differences.append("BertModel.load(directory:) fails: \(error)")
        }
        if let d = answers.difference(from: original, namesMayDiffer: c.expect == .sameNumbers) { differences.append(d) }
        switch c.expect {
        case .reject:
            let what = differences.isEmpty ? "the same model as the original" : differences.joined(separator: "; ")
            return CaseResult(outcome: .silent, detail: "loads: \(what); predicts \(answers.summary)")
        case .equivalent, .sameNumbers:
            if differences.isEmpty { return CaseResult(outcome: .correctLoad, detail: "") }
            return CaseResult(outcome: .silent, detail: "loads a different model: " + differences.joined(separator: "; "))
        }
    }
}

import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import Runtime
import Training

/// `cofi bench`: the inference engine's latency, throughput and peak memory on a model directory, and with
/// `--baseline` the same for a second model and the speedup.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a model's inference latency, throughput and peak memory (and its speedup over a baseline).",
        discussion: """
            Workloads, each on the native inference engine (tokenization not timed):
              latency_b1_t32, latency_b1_t128, latency_b1_t384   one sequence of exactly T tokens per call (T capped \
            at the model's max positions; seq_len says the T used)
              throughput_b32_t128   32 sequences of 128 tokens per call
              dev_throughput        a dev set (--task, default movie-snippets when its assets exist, or --data FILE) \
            tokenized at --max-length, 32 sequences of their own lengths per call, packed without padding
            Each workload runs --warmup untimed calls, then --repeats timed calls (default: as many as fit in \
            --budget seconds, 5 … 1000). dev_throughput times every batch of whole passes over the dev set (default: \
            as many passes as fit in the budget, at least one); its repeats count passes. p50/p90/p99 are percentiles \
            of the per-call times (linear interpolation); seq/s is the sequences of all timed calls over their total \
            time. Peak memory is the process's peak resident set (getrusage ru_maxrss) while the model was loaded and \
            measured; on Linux the peak is reset between models (/proc/self/clear_refs), elsewhere it includes the \
            first model's.

            With --baseline, the baseline (e.g. the dense model the compact one was pruned from) runs the same \
            workloads on the same inputs, after the model; speedup = baseline time / model time per workload \
            (p50 for latency, seq/s for throughput).

            --json FILE writes one JSON object per line: per workload {"impl":"cofi","model":…,"workload":…,\
            "batch":…,"seq_len":… (null for the dev set),"p50_ms":…,"p90_ms":…,"p99_ms":…,"seq_per_s":…,\
            "repeats":…}, per model {"impl":"cofi","model":…,"peak_rss_mib":…}, and with a baseline \
            {"speedup":{workload: ratio, …}}.
            """)

    @Option(help: "Model directory (e.g. a cofi prune output's final/).")
    var model: String

    @Option(help: "Baseline model directory (e.g. the dense model cofi finetune wrote to OUT/best).")
    var baseline: String?

    @Option(help: "The model's name in the table and JSON (default: its directory, with the parent for best/ or final/).")
    var name: String?

    @Option(help: "The baseline's name (default: as for --name).")
    var baselineName: String?

    @Option(help: "Dev set of dev_throughput: a task name (movie-snippets or a GLUE task; default movie-snippets when its assets exist).")
    var task: String?

    @Option(help: "Dev set of dev_throughput: your file of texts (as cofi predict reads them: text lines, .tsv pairs or .jsonl).")
    var data: String?

    @Option(help: "Maximum tokens per dev-set sequence (default: 128, or the model's max positions if fewer).")
    var maxLength: Int?

    @Option(help: "Timed calls per workload (default: as many as fit in --budget).")
    var repeats: Int?

    @Option(help: "Untimed warm-up calls per workload.")
    var warmup: Int = 2

    @Option(help: "Seconds of timed calls per workload when --repeats is not given.")
    var budget: Double = 5

    @Option(help: "Threads of the inference engine (default: all cores).")
    var threads: Int?

    @Option(help: "Write the results as JSON lines to this file.")
    var json: String?

    func validate() throws {
        if task != nil && data != nil { throw ValidationError("give either --task NAME or --data FILE, not both") }
        if let repeats, repeats < 1 { throw ValidationError("--repeats is \(repeats); expected a positive number") }
        guard warmup >= 0 else { throw ValidationError("--warmup is \(warmup); expected 0 or more") }
        guard budget > 0, budget.isFinite else { throw ValidationError("--budget is \(budget); expected a positive number of seconds") }
        if let maxLength, maxLength < 3 {
            throw ValidationError("--max-length is \(maxLength); expected at least 3 ([CLS], a token, [SEP])")
        }
        if let threads, threads < 1 { throw ValidationError("--threads is \(threads); expected a positive number") }
    }

    func run() throws {
        do { try bench() } catch let e as UserError { throw e } catch { throw UserError(description: "\(error)") }
    }

    private func bench() throws {
        let modelURL = absoluteURL(model)
        let baselineURL = baseline.map(absoluteURL)
        // Check both directories before spending minutes on the first.
        for url in [modelURL] + (baselineURL.map { [$0] } ?? []) {
            if !FileManager.default.fileExists(atPath: url.appendingPathComponent("config.json").path) {
                _ = try ModelDirectory.load(url)  // throws the directory's error
            }
        }
        let texts = try devTexts()
        var results = [try measure(modelURL, name: name ?? Self.displayName(modelURL), texts: texts)]
        if let baselineURL {
            results.append(try measure(baselineURL, name: baselineName ?? Self.displayName(baselineURL), texts: texts))
        }
        let speedups = results.count == 2 ? Self.speedups(model: results[0], baseline: results[1]) : nil
        print(Self.table(results, speedups: speedups))
        if let json {
            var lines: [String] = []
            for r in results {
                lines += r.workloads.map(\.json)
                lines.append(BenchJSON.object([("impl", .string("cofi")), ("model", .string(r.name)),
                                               ("peak_rss_mib", .number(r.peakRSSMiB))]))
            }
            if let speedups {
                lines.append(BenchJSON.object([("speedup", .object(speedups.map { ($0.0, .number($0.1)) }))]))
            }
            let url = absoluteURL(json)
            do {
                try Data(lines.map { $0 + "\n" }.joined().utf8).write(to: url, options: .atomic)
            } catch {
                throw UserError(description: "\(url.path): cannot write the JSON results (\(error.localizedDescription))")
            }
        }
    }

    // MARK: Dev set

    /// The dev set's texts (and pairs): --data FILE, --task NAME, or movie-snippets when its assets exist (nil
    /// otherwise: dev_throughput is skipped, with a note).
    private func devTexts() throws -> [(String, String?)]? {
        if let data {
            let url = absoluteURL(data)
            let reader = try LineReader(file: url)
            let parser = RecordParser(format: InputFormat.infer(url), pairSeparator: nil, questionAnswering: false)
            var texts: [(String, String?)] = []
            while case let lines = reader.lines(max: 1024), !lines.isEmpty {
                for line in lines {
                    switch parser.parse(line) {
                    case .failure(let e) where e.isEmptyLine: continue
                    case .failure(let e): throw UserError(description: "\(url.path) \(e.description)")
                    case .success(let r):
                        switch r.input {
                        case .text(let a): texts.append((a, nil))
                        case .pair(let a, let b), .question(let a, let b): texts.append((a, b))
                        }
                    }
                }
            }
            if let error = reader.error { throw UserError(description: "\(url.path): \(error)") }
            guard !texts.isEmpty else { throw UserError(description: "\(url.path): no texts; expected one per line") }
            return texts
        }
        let source: TaskSource
        do {
            source = try TaskSource.named(task ?? MovieSnippets.name, data: nil, assets: assetsDirectory())
            let dev = try source.load(train: false).dev
            return dev.examples.map { ($0.textA, $0.textB) }
        } catch where task == nil {
            note("no dev set (\(error)); dev_throughput skipped — give --task NAME or --data FILE, or fetch the "
                 + "assets with scripts/fetch-assets.sh")
            return nil
        }
    }

    // MARK: Measuring

    /// Everything measured on one model.
    struct ModelResult {
        let name: String
        let workloads: [Measurement]
        let peakRSSMiB: Double
    }

    /// Loads the model in `directory` and runs every workload on it.
    private func measure(_ directory: URL, name: String, texts: [(String, String?)]?) throws -> ModelResult {
        PeakMemory.reset()
        let (bert, tokenizer) = try ModelDirectory.load(directory)
        guard bert.task != nil else {
            throw UserError(description: "\(directory.path): the model has no task head (no classifier or qa_outputs "
                            + "weights) — bench measures fine-tuned models: cofi finetune writes OUT/best, cofi prune OUT/final")
        }
        let length = maxLength ?? min(128, bert.shape.maxPositions)
        guard length <= bert.shape.maxPositions || texts == nil else {
            throw UserError(description: "--max-length \(length) exceeds the max_position_embeddings of \(directory.path) "
                            + "(\(bert.shape.maxPositions))")
        }
        let engine = try InferenceEngine(model: bert, threads: threads)
        note("\(name): \(engine.shape.layers.map { "\($0.heads)h/\($0.ffnWidth)" }.joined(separator: " ")) "
             + "(heads/FFN per layer), \(engine.threads) threads")
        var workloads: [Measurement] = []
        for (w, batch, T) in [("latency_b1_t32", 1, 32), ("latency_b1_t128", 1, 128), ("latency_b1_t384", 1, 384),
                              ("throughput_b32_t128", 32, 128)] {
            let length = min(T, engine.maxPositions)
            let inputs = Self.syntheticInputs(count: batch, length: length, tokenizer: tokenizer,
                                              vocabSize: engine.shape.vocabSize)
            let times = try timeCalls { try engine.run(inputs) }
            workloads.append(Measurement(model: name, workload: w, batch: batch, seqLen: length, times: times,
                                         sequences: batch * times.count, repeats: times.count))
            note(workloads.last!.row)
        }
        if let texts {
            let encoder = TaskEncoder(tokenizer: tokenizer, maxLength: length)
            let sequences = texts.map { t -> EncodedInput in
                let e = encoder.encode(t.0, t.1).encoding
                return EncodedInput(tokenIds: e.ids, tokenTypeIds: e.typeIds)
            }
            let batches = stride(from: 0, to: sequences.count, by: 32).map {
                Array(sequences[$0..<min($0 + 32, sequences.count)])
            }
            for b in batches.prefix(warmup) { _ = try engine.run(b) }
            var times: [Double] = []
            var passes = 0
            repeat {
                for b in batches { times.append(try Self.timed { try engine.run(b) }) }
                passes += 1
            } while passes < (repeats ?? max(1, Int(budget / times.reduce(0, +))))
            workloads.append(Measurement(model: name, workload: "dev_throughput", batch: 32, seqLen: nil, times: times,
                                         sequences: sequences.count * passes, repeats: passes))
            note(workloads.last!.row + "  (\(sequences.count) sequences, \(batches.count) batches per pass)")
        }
        return ModelResult(name: name, workloads: workloads, peakRSSMiB: PeakMemory.mebibytes())
    }

    /// Warm-up calls, then the timed ones: --repeats, or as many as fit in --budget judged from the last warm-up
    /// (5 … 1000). Returns the seconds of each timed call.
    private func timeCalls(_ call: () throws -> [SequenceOutput]) throws -> [Double] {
        var last = 0.0
        for _ in 0..<max(warmup, repeats == nil ? 1 : 0) { last = try Self.timed(call) }
        let n = repeats ?? min(1000, max(5, Int(budget / max(last, 1e-6))))
        return try (0..<n).map { _ in try Self.timed(call) }
    }

    /// Keeps outputs observable, so that no call is optimised away.
    nonisolated(unsafe) static var sink: Float = 0

    /// Seconds one call takes.
    static func timed(_ call: () throws -> [SequenceOutput]) throws -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let out = try call()
        let t1 = DispatchTime.now().uptimeNanoseconds
        sink += out.first?.logits.first ?? out.first?.startLogits.first ?? 0
        return Double(t1 - t0) * 1e-9
    }

    /// `count` sequences of exactly `length` tokens: [CLS], random non-special vocabulary ids, [SEP] — the same
    /// for every model with the same vocabulary (fixed seed).
    static func syntheticInputs(count: Int, length: Int, tokenizer: WordPieceTokenizer, vocabSize: Int) -> [EncodedInput] {
        var rng = Xoshiro256(seed: 6)
        let ordinary = (0..<min(vocabSize, tokenizer.idToToken.count)).filter { !tokenizer.specialIds.contains($0) }
        return (0..<count).map { _ in
            let middle = (0..<max(0, length - 2)).map { _ in ordinary[Int(rng.next() % UInt64(ordinary.count))] }
            return EncodedInput(tokenIds: Array(([tokenizer.clsId] + middle + [tokenizer.sepId]).prefix(length)))
        }
    }

    // MARK: Reporting

    /// Baseline time / model time per workload both measured: p50 for latency, seq/s for throughput.
    static func speedups(model: ModelResult, baseline: ModelResult) -> [(String, Double)] {
        model.workloads.compactMap { m in
            guard let b = baseline.workloads.first(where: { $0.workload == m.workload }) else { return nil }
            let ratio = m.workload.hasPrefix("latency") ? b.p50 / m.p50 : m.seqPerSecond / b.seqPerSecond
            return (m.workload, ratio)
        }
    }

    static func table(_ results: [ModelResult], speedups: [(String, Double)]?) -> String {
        var lines = [Measurement.header + (speedups == nil ? "" : BenchJSON.pad("speedup", 9, right: true))]
        for (k, r) in results.enumerated() {
            for m in r.workloads {
                var line = m.row
                if k == 0, let s = speedups?.first(where: { $0.0 == m.workload }) {
                    line += BenchJSON.pad(String(format: "%.2fx", s.1), 9, right: true)
                }
                lines.append(line)
            }
        }
        lines.append("")
        for r in results { lines.append("peak memory of \(r.name): \(String(format: "%.1f", r.peakRSSMiB)) MiB") }
        return lines.joined(separator: "\n")
    }

    /// The directory's name, with its parent's for the generic names cofi gives outputs (best/, final/, …).
    static func displayName(_ url: URL) -> String {
        let last = url.lastPathComponent
        guard ["best", "final", "checkpoint", "pruned"].contains(last) else { return last }
        return url.deletingLastPathComponent().lastPathComponent + "/" + last
    }

    private func note(_ message: String) {
        FileHandle.standardError.write(Data("[bench] \(message)\n".utf8))
    }
}

/// The timed calls of one workload on one model.
struct Measurement {
    let model: String
    let workload: String
    let batch: Int
    /// Tokens per sequence; nil for the dev set (variable lengths).
    let seqLen: Int?
    /// Seconds of each timed call.
    let times: [Double]
    /// Sequences processed by all timed calls.
    let sequences: Int
    /// Timed calls (dev set: timed passes).
    let repeats: Int

    var p50: Double { Self.percentile(times, 50) }
    var p90: Double { Self.percentile(times, 90) }
    var p99: Double { Self.percentile(times, 99) }
    var seqPerSecond: Double { Double(sequences) / times.reduce(0, +) }

    /// The `q`-th percentile with linear interpolation between order statistics (numpy's default).
    static func percentile(_ xs: [Double], _ q: Double) -> Double {
        precondition(!xs.isEmpty, "percentile of no values")
        let s = xs.sorted()
        let position = q / 100 * Double(s.count - 1)
        let lo = Int(position.rounded(.down)), hi = min(lo + 1, s.count - 1)
        return s[lo] + (s[hi] - s[lo]) * (position - Double(lo))
    }

    var json: String {
        BenchJSON.object([
            ("impl", .string("cofi")), ("model", .string(model)), ("workload", .string(workload)),
            ("batch", .integer(batch)), ("seq_len", seqLen.map { .integer($0) } ?? .null),
            ("p50_ms", .number(p50 * 1e3)), ("p90_ms", .number(p90 * 1e3)), ("p99_ms", .number(p99 * 1e3)),
            ("seq_per_s", .number(seqPerSecond)), ("repeats", .integer(repeats)),
        ])
    }

    static let header = BenchJSON.pad("model", 22) + BenchJSON.pad("workload", 21) + BenchJSON.pad("batch", 6, right: true)
        + BenchJSON.pad("T", 5, right: true) + BenchJSON.pad("p50 ms", 10, right: true)
        + BenchJSON.pad("p90 ms", 10, right: true) + BenchJSON.pad("p99 ms", 10, right: true)
        + BenchJSON.pad("seq/s", 10, right: true) + BenchJSON.pad("runs", 6, right: true)

    var row: String {
        func f(_ x: Double) -> String { String(format: "%.2f", x) }
        return BenchJSON.pad(model, 22) + BenchJSON.pad(workload, 21) + BenchJSON.pad("\(batch)", 6, right: true)
            + BenchJSON.pad(seqLen.map(String.init) ?? "var", 5, right: true)
            + BenchJSON.pad(f(p50 * 1e3), 10, right: true) + BenchJSON.pad(f(p90 * 1e3), 10, right: true)
            + BenchJSON.pad(f(p99 * 1e3), 10, right: true) + BenchJSON.pad(f(seqPerSecond), 10, right: true)
            + BenchJSON.pad("\(repeats)", 6, right: true)
    }
}

/// JSON lines with their keys in the agreed order (JSONSerialization does not keep order) and table padding.
enum BenchJSON {
    indirect enum Value {
        case string(String), integer(Int), number(Double), null, object([(String, Value)])

        var text: String {
            switch self {
            case .string(let s): return BenchJSON.quote(s)
            case .integer(let i): return "\(i)"
            case .number(let d): return d.isFinite ? String(format: "%.4f", d) : "null"
            case .null: return "null"
            case .object(let fields): return BenchJSON.object(fields)
            }
        }
    }

    static func object(_ fields: [(String, Value)]) -> String {
        "{" + fields.map { quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
    }

    /// A JSON string literal.
    static func quote(_ s: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }

    static func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
        let n = max(0, width - s.count)
        return right ? String(repeating: " ", count: n) + s : s + String(repeating: " ", count: n)
    }
}

/// The process's peak resident memory.
enum PeakMemory {
    /// Resets the peak to the current resident size where the system allows it (Linux: writing 5 to
    /// /proc/self/clear_refs resets the high-water mark that getrusage reports).
    static func reset() {
        #if os(Linux)
        if let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") {
            handle.write(Data("5".utf8))
            try? handle.close()
        }
        #endif
    }

    /// getrusage's ru_maxrss in MiB (Linux reports KiB, macOS bytes).
    static func mebibytes() -> Double {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        #if os(macOS)
        return Double(usage.ru_maxrss) / 1_048_576
        #else
        return Double(usage.ru_maxrss) / 1024
        #endif
    }
}

import BERT
import Formats
import Foundation
import Tasks
import Tensor

/// `cofi bench`'s measurements of a model directory on the inference engine (tokenization not timed):
///   latency_b1_t32, latency_b1_t128, latency_b1_t384   one sequence of exactly T tokens per call (T capped at the
///     model's max positions)
///   throughput_b32_t128   32 sequences of 128 tokens per call
///   dev_throughput        a dev set's texts tokenized at `maxLength`, 32 sequences of their own lengths per call,
///     packed without padding; every batch of whole passes over the set is timed, its repeats count passes
/// and the process's peak resident memory while the model was loaded and measured.
public struct ModelBenchmark {
    /// Warm-up and timed calls per workload (default bounds 5 … 1000 when sized by the budget).
    public var policy: RepeatPolicy
    /// Maximum tokens per dev-set sequence (default: 128, or the model's max positions if fewer).
    public var maxLength: Int?
    /// Threads of the inference engine (nil: all cores).
    public var threads: Int?
    /// Progress lines (stderr in `cofi bench`).
    public var note: (String) -> Void
    /// How the models are loaded (`cofi bench --allow-non-finite`).
    public var loadOptions = ModelLoadOptions()
    /// The workloads to run (nil: all of `allWorkloads`).
    public var only: Set<String>?

    /// Every workload's name, in the order they run.
    public static var allWorkloads: [String] { latencyWorkloads.map(\.0) + ["dev_throughput"] }

    public static let latencyWorkloads = [("latency_b1_t32", 1, 32), ("latency_b1_t128", 1, 128),
                                          ("latency_b1_t384", 1, 384), ("throughput_b32_t128", 32, 128)]

    public init(warmup: Int = 2, repeats: Int? = nil, budget: Double = 5, maxLength: Int? = nil, threads: Int? = nil,
                note: @escaping (String) -> Void = { _ in }) {
        policy = RepeatPolicy(warmup: warmup, repeats: repeats, budget: budget, bounds: 5...1000)
        self.maxLength = maxLength
        self.threads = threads
        self.note = note
    }

    /// Everything measured on one model.
    public struct ModelResult: Sendable {
        public let name: String
        public let workloads: [Measurement]
        public let peakRSSMiB: Double

        public func workload(_ name: String) -> Measurement? { workloads.first { $0.workload == name } }
    }

    /// Loads the model in `directory` and runs every workload on it; `texts` (text, pair) is the dev set of
    /// dev_throughput (nil: skipped).
    public func measure(_ directory: URL, name: String, texts: [(String, String?)]?) throws -> ModelResult {
        PeakMemory.reset()
        let (bert, tokenizer) = try ModelDirectory.loadWithHead(directory, options: loadOptions)
        let length = maxLength ?? min(128, bert.shape.maxPositions)
        guard length <= bert.shape.maxPositions || texts == nil else {
            throw PredictorError("--max-length \(length) exceeds the max_position_embeddings of \(directory.path) "
                                 + "(\(bert.shape.maxPositions))")
        }
        let engine = try InferenceEngine(model: bert, threads: threads)
        note("\(name): \(engine.shape.layers.map { "\($0.heads)h/\($0.ffnWidth)" }.joined(separator: " ")) "
             + "(heads/FFN per layer), \(engine.threads) threads")
        var workloads: [Measurement] = []
        for (w, batch, T) in Self.latencyWorkloads where only?.contains(w) ?? true {
            let length = min(T, engine.maxPositions)
            let inputs = Self.syntheticInputs(count: batch, length: length, tokenizer: tokenizer,
                                              vocabSize: engine.shape.vocabSize)
            let times = try policy.time { try Self.observe(engine.run(inputs)) }
            workloads.append(Measurement(model: name, workload: w, batch: batch, seqLen: length, times: times,
                                         sequences: batch * times.count, repeats: times.count))
            note(workloads.last!.row)
        }
        if let texts, only?.contains("dev_throughput") ?? true {
            workloads.append(try devThroughput(engine, tokenizer: tokenizer, maxLength: length, texts: texts, name: name))
        }
        return ModelResult(name: name, workloads: workloads, peakRSSMiB: PeakMemory.mebibytes())
    }

    /// Whole passes over the dev set, 32 sequences a call: `policy.repeats` passes, else as many as fit in the
    /// budget (at least one), after `policy.warmup` untimed batches.
    private func devThroughput(_ engine: InferenceEngine, tokenizer: WordPieceTokenizer, maxLength: Int,
                               texts: [(String, String?)], name: String) throws -> Measurement {
        let encoder = TaskEncoder(tokenizer: tokenizer, maxLength: maxLength)
        let sequences = texts.map { t -> EncodedInput in
            let e = encoder.encode(t.0, t.1).encoding
            return EncodedInput(tokenIds: e.ids, tokenTypeIds: e.typeIds)
        }
        let batches = stride(from: 0, to: sequences.count, by: 32).map {
            Array(sequences[$0..<min($0 + 32, sequences.count)])
        }
        for b in batches.prefix(policy.warmup) { try Self.observe(engine.run(b)) }
        var times: [Double] = []
        var passes = 0
        repeat {
            for b in batches {
                let t0 = Benchmark.now()
                try Self.observe(engine.run(b))
                times.append(Benchmark.now() - t0)
            }
            passes += 1
        } while passes < (policy.repeats ?? max(1, Int(policy.budget / times.reduce(0, +))))
        let m = Measurement(model: name, workload: "dev_throughput", batch: 32, seqLen: nil, times: times,
                            sequences: sequences.count * passes, repeats: passes)
        note(m.row + "  (\(sequences.count) sequences, \(batches.count) batches per pass)")
        return m
    }

    /// Keeps an engine call's outputs observable.
    static func observe(_ out: [SequenceOutput]) {
        Benchmark.sink += out.first?.logits.first ?? out.first?.startLogits.first ?? 0
    }

    /// `count` sequences of exactly `length` tokens: [CLS], random non-special vocabulary ids, [SEP] — the same
    /// for every model with the same vocabulary (fixed seed).
    public static func syntheticInputs(count: Int, length: Int, tokenizer: WordPieceTokenizer,
                                       vocabSize: Int) -> [EncodedInput] {
        var rng = Xoshiro256(seed: 6)
        let ordinary = (0..<min(vocabSize, tokenizer.idToToken.count)).filter { !tokenizer.specialIds.contains($0) }
        return (0..<count).map { _ in
            let middle = (0..<max(0, length - 2)).map { _ in ordinary[Int(rng.next() % UInt64(ordinary.count))] }
            return EncodedInput(tokenIds: Array(([tokenizer.clsId] + middle + [tokenizer.sepId]).prefix(length)))
        }
    }

    /// Baseline time / model time per workload both measured: p50 for latency, seq/s for throughput.
    public static func speedups(model: ModelResult, baseline: ModelResult) -> [(String, Double)] {
        model.workloads.compactMap { m in
            guard let b = baseline.workload(m.workload) else { return nil }
            let ratio = m.workload.hasPrefix("latency") ? b.p50 / m.p50 : m.seqPerSecond / b.seqPerSecond
            return (m.workload, ratio)
        }
    }

    /// The results as a table, with the speedup column when given.
    public static func table(_ results: [ModelResult], speedups: [(String, Double)]?) -> String {
        var lines = [Measurement.header + (speedups == nil ? "" : Benchmark.pad("speedup", 9, right: true))]
        for (k, r) in results.enumerated() {
            for m in r.workloads {
                var line = m.row
                if k == 0, let s = speedups?.first(where: { $0.0 == m.workload }) {
                    line += Benchmark.pad(String(format: "%.2fx", s.1), 9, right: true)
                }
                lines.append(line)
            }
        }
        lines.append("")
        for r in results { lines.append("peak memory of \(r.name): \(String(format: "%.1f", r.peakRSSMiB)) MiB") }
        return lines.joined(separator: "\n")
    }

    /// The results as JSON lines: one per workload, one per model (peak memory), and the speedups when given.
    public static func jsonLines(_ results: [ModelResult], speedups: [(String, Double)]?) -> [String] {
        var lines: [String] = []
        for r in results {
            lines += r.workloads.map(\.json)
            lines.append(JSON.object([("impl", "cofi"), ("model", r.name), ("peak_rss_mib", JSON.Raw(r.peakRSSMiB, digits: 4))]))
        }
        if let speedups {
            lines.append(JSON.object([("speedup", speedups.map { ($0.0, JSON.Raw($0.1, digits: 4)) as (String, Any?) })]))
        }
        return lines
    }
}

/// The timed calls of one workload on one model.
public struct Measurement: Sendable {
    public let model: String
    public let workload: String
    public let batch: Int
    /// Tokens per sequence; nil for the dev set (variable lengths).
    public let seqLen: Int?
    /// Seconds of each timed call.
    public let times: [Double]
    /// Sequences processed by all timed calls.
    public let sequences: Int
    /// Timed calls (dev set: timed passes).
    public let repeats: Int

    public var p50: Double { Benchmark.percentile(times, 50) }
    public var p90: Double { Benchmark.percentile(times, 90) }
    public var p99: Double { Benchmark.percentile(times, 99) }
    public var seqPerSecond: Double { Double(sequences) / times.reduce(0, +) }

    public var json: String {
        func ms(_ seconds: Double) -> JSON.Raw { JSON.Raw(seconds * 1e3, digits: 4) }
        return JSON.object([
            ("impl", "cofi"), ("model", model), ("workload", workload), ("batch", batch), ("seq_len", seqLen),
            ("p50_ms", ms(p50)), ("p90_ms", ms(p90)), ("p99_ms", ms(p99)),
            ("seq_per_s", JSON.Raw(seqPerSecond, digits: 4)), ("repeats", repeats),
        ])
    }

    public static let header = Benchmark.pad("model", 22) + Benchmark.pad("workload", 21)
        + Benchmark.pad("batch", 6, right: true) + Benchmark.pad("T", 5, right: true)
        + Benchmark.pad("p50 ms", 10, right: true) + Benchmark.pad("p90 ms", 10, right: true)
        + Benchmark.pad("p99 ms", 10, right: true) + Benchmark.pad("seq/s", 10, right: true)
        + Benchmark.pad("runs", 6, right: true)

    public var row: String {
        func f(_ x: Double) -> String { String(format: "%.2f", x) }
        return Benchmark.pad(model, 22) + Benchmark.pad(workload, 21) + Benchmark.pad("\(batch)", 6, right: true)
            + Benchmark.pad(seqLen.map(String.init) ?? "var", 5, right: true)
            + Benchmark.pad(f(p50 * 1e3), 10, right: true) + Benchmark.pad(f(p90 * 1e3), 10, right: true)
            + Benchmark.pad(f(p99 * 1e3), 10, right: true) + Benchmark.pad(f(seqPerSecond), 10, right: true)
            + Benchmark.pad("\(repeats)", 6, right: true)
    }
}

extension ModelBenchmark {
    /// The texts (and pairs) of a file as `cofi predict` reads it (text lines, .tsv pairs or .jsonl records; the
    /// format by extension); empty lines are skipped, any other bad line fails naming it.
    public static func texts(file url: URL) throws -> [(String, String?)] {
        let reader = try LineReader(file: url)
        let parser = RecordParser(format: InputFormat.infer(url))
        var texts: [(String, String?)] = []
        while case let lines = reader.lines(max: 1024), !lines.isEmpty {
            for line in lines {
                switch parser.parse(line) {
                case .failure(let e) where e.isEmptyLine: continue
                case .failure(let e): throw InputError("\(url.path) \(e.description)")
                case .success(let r):
                    switch r.input {
                    case .text(let a): texts.append((a, nil))
                    case .pair(let a, let b), .question(let a, let b): texts.append((a, b))
                    }
                }
            }
        }
        if let error = reader.error { throw InputError("\(url.path): \(error)") }
        guard !texts.isEmpty else { throw InputError("\(url.path): no texts; expected one per line") }
        return texts
    }

    /// The dev set's texts (and pairs) of a classification or regression task (`TaskSource.named`).
    public static func texts(task: String, assets: URL) throws -> [(String, String?)] {
        let source = try TaskSource.named(task, data: nil, assets: assets)
        return try source.load(train: false).dev.examples.map { ($0.textA, $0.textB) }
    }
}

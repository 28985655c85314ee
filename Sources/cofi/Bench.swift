import ArgumentParser
import BERT
import Foundation
import Platform
import Runtime
import Tasks

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

    @Option(help: "Run only these workloads (comma-separated names from the list above; default: all).")
    var workloads: String?

    @Option(help: "Write the results as JSON lines to this file.")
    var json: String?

    @Flag(help: "Load models whose weights hold NaN or infinities (refused by default), to look into them.")
    var allowNonFinite = false

    func validate() throws {
        if task != nil && data != nil { throw ValidationError("give either --task NAME or --data FILE, not both") }
        if let repeats, repeats < 1 { throw ValidationError("--repeats is \(repeats); expected a positive number") }
        guard warmup >= 0 else { throw ValidationError("--warmup is \(warmup); expected 0 or more") }
        guard budget > 0, budget.isFinite else { throw ValidationError("--budget is \(budget); expected a positive number of seconds") }
        if let maxLength, maxLength < 3 {
            throw ValidationError("--max-length is \(maxLength); expected at least 3 ([CLS], a token, [SEP])")
        }
        if let threads, threads < 1 { throw ValidationError("--threads is \(threads); expected a positive number") }
        _ = try selectedWorkloads()
    }

    /// --workloads as a set (nil: all); an unknown or empty name is refused with the list of known ones.
    private func selectedWorkloads() throws -> Set<String>? {
        guard let workloads else { return nil }
        let names = workloads.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        for n in names where !ModelBenchmark.allWorkloads.contains(n) {
            throw ValidationError("--workloads: unknown workload '\(n)'; expected a comma-separated list of "
                                  + ModelBenchmark.allWorkloads.joined(separator: ", "))
        }
        return Set(names)
    }

    func run() throws {
        do { try bench() } catch let e as UserError { throw e } catch { throw UserError(description: "\(error)") }
    }

    private func bench() throws {
        let modelURL = absoluteURL(model)
        let baselineURL = baseline.map(absoluteURL)
        // Check both directories before spending minutes on the first.
        for url in [modelURL] + (baselineURL.map { [$0] } ?? []) { try ModelDirectory.check(url) }
        let only = try selectedWorkloads()
        let texts = only?.contains("dev_throughput") ?? true ? try devTexts() : nil
        let kernels = KernelFamily.selected
        FileHandle.standardError.write(Data("[bench] kernels: \(kernels.family.rawValue) (\(kernels.reason))\n".utf8))
        var benchmark = ModelBenchmark(warmup: warmup, repeats: repeats, budget: budget, maxLength: maxLength,
                                       threads: threads, note: Self.note)
        benchmark.loadOptions = ModelLoadOptions(allowNonFiniteWeights: allowNonFinite)
        benchmark.only = only
        var results = [try benchmark.measure(modelURL, name: name ?? ModelDirectory.displayName(modelURL), texts: texts)]
        if let baselineURL {
            results.append(try benchmark.measure(baselineURL, name: baselineName ?? ModelDirectory.displayName(baselineURL),
                                                 texts: texts))
        }
        let speedups = results.count == 2 ? ModelBenchmark.speedups(model: results[0], baseline: results[1]) : nil
        print(ModelBenchmark.table(results, speedups: speedups))
        if let json {
            let url = absoluteURL(json)
            let lines = ModelBenchmark.jsonLines(results, speedups: speedups)
            do {
                try Data(lines.map { $0 + "\n" }.joined().utf8).write(to: url, options: .atomic)
            } catch {
                throw UserError(description: "\(url.path): cannot write the JSON results (\(error.localizedDescription))")
            }
        }
    }

    /// The dev set's texts (and pairs): --data FILE, --task NAME, or movie-snippets when its assets exist (nil
    /// otherwise: dev_throughput is skipped, with a note).
    private func devTexts() throws -> [(String, String?)]? {
        if let data { return try ModelBenchmark.texts(file: absoluteURL(data)) }
        do {
            return try ModelBenchmark.texts(task: task ?? MovieSnippets.name, assets: AssetsDirectory.url)
        } catch where task == nil {
            Self.note("no dev set (\(error)); dev_throughput skipped — give --task NAME or --data FILE, or fetch the "
                      + "assets with cofi fetch")
            return nil
        }
    }

    private static func note(_ message: String) {
        FileHandle.standardError.write(Data("[bench] \(message)\n".utf8))
    }
}

import ArgumentParser
import BERT
import Foundation
import Platform
import Runtime
import Tasks

/// `cofi profile`: a measured cost model of the inference engine on this machine (`LatencyProfiler`), written as
/// a `LatencyProfile` JSON file.
struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the inference engine's per-sublayer costs on this machine and fit a latency profile.",
        discussion: """
            Times whole forward passes of synthetic models (the model's config and head, random weights, chosen \
            shapes) on the native engine — B sequences of exactly T tokens per call, the median of --repeats calls — \
            and takes differences of them, amortized over several identical layers, to isolate each sublayer's \
            cost: the embeddings and head (base), attention before the last attention layer (all rows), the last \
            attention layer (keys and values on all rows, the rest on the [CLS] rows), FFNs before it (all rows) \
            and at or after it ([CLS] rows; a span head has no such cut). Widths D, ¾D, ½D, ¼D; 1, 2, H/4, H/2, ¾H, H \
            heads; 1, I/16, I/8, I/4, I/2, ¾I, I FFN units (pruned widths that are whole 32-wide panels moved half a \
            panel down). Each cost is fitted as c0 + cD·D + cN·n + cND·n·D ms (n heads or \
            units, D the hidden width), the base as c0 + cD·D.

            A whole heterogeneous model runs somewhat slower than the sum of its parts timed alone (row strides of \
            the widest layer, threads meeting), so --calibration random whole shapes (another seed) then fit \
            measured ≈ offset + scale × the sum, and every cost is scaled by it (the offset goes to the base).

            Then --checks random pruned shapes are timed whole and compared with the prediction; the table and the \
            error distribution are printed and kept in the file. Progress goes to stderr. The profile holds for \
            this machine, batch, sequence length and thread count (they are recorded in the file).
            """)

    @Option(help: "Model directory (e.g. a cofi finetune output's best/); its dense shape and head are profiled.")
    var model: String

    @Option(help: "Sequences per call.")
    var batch: Int = 1

    @Option(help: "Tokens per sequence (capped at the model's max positions).")
    var seqLen: Int = 128

    @Option(help: "Threads of the inference engine (default: all cores, as cofi bench).")
    var threads: Int?

    @Option(help: "Random shapes timed after the fit to check the prediction.")
    var checks: Int = 20

    @Option(help: "Random whole shapes the sum of the sublayer costs is calibrated on (0: none).")
    var calibration: Int = 20

    @Option(help: "Timed calls per timing (the median is kept).")
    var repeats: Int = 21

    @Option(help: "Write the profile (JSON) to this file.")
    var out: String

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch is \(batch); expected a positive number of sequences") }
        guard seqLen >= 1 else { throw ValidationError("--seq-len is \(seqLen); expected a positive number of tokens") }
        if let threads, threads < 1 { throw ValidationError("--threads is \(threads); expected a positive number") }
        guard checks >= 0 else { throw ValidationError("--checks is \(checks); expected 0 or more") }
        guard calibration == 0 || calibration >= 2 else { throw ValidationError("--calibration is \(calibration); expected 0 or at least 2 shapes") }
        guard repeats >= 1 else { throw ValidationError("--repeats is \(repeats); expected a positive number") }
    }

    func run() throws {
        do { try profile() } catch let e as UserError { throw e } catch { throw UserError(description: "\(error)") }
    }

    private func profile() throws {
        let modelURL = absoluteURL(model), outURL = absoluteURL(out)
        try ModelDirectory.check(modelURL)
        try Self.checkWritable(outURL)
        let kernels = KernelFamily.selected
        Self.note("kernels: \(kernels.family.rawValue) (\(kernels.reason)), processor: \(Processor.modelName)")
        var profiler = LatencyProfiler(batch: batch, sequenceLength: seqLen, threads: threads, checks: checks,
                                       note: Self.note)
        profiler.repeats = repeats
        profiler.calibrationShapes = calibration
        let start = Benchmark.now()
        let profile = try profiler.profile(directory: modelURL)
        let seconds = Benchmark.now() - start
        print(Self.report(profile, seconds: seconds))
        do { try profile.write(to: outURL) } catch {
            throw UserError(description: "\(outURL.path): cannot write the latency profile (--out) (\(error.localizedDescription))")
        }
        print("wrote \(outURL.path)")
    }

    /// Fails, naming the file, unless `url` can be written: its directory exists and is writable, and it is not a
    /// directory itself (checked before minutes of timing).
    static func checkWritable(_ url: URL) throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw UserError(description: "\(url.path): --out is a directory; expected a file name for the latency profile")
        }
        let parent = url.deletingLastPathComponent().path
        guard fm.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw UserError(description: "\(url.path): cannot write the latency profile (--out): no directory \(parent)")
        }
        guard fm.isWritableFile(atPath: parent) else {
            throw UserError(description: "\(url.path): cannot write the latency profile (--out): \(parent) is not writable")
        }
    }

    /// The coefficients, the checks' table and their error distribution.
    static func report(_ p: LatencyProfile, seconds: Double) -> String {
        func f(_ x: Double) -> String { String(format: "%.4g", x) }
        /// "c0 + a·X − b·Y": the terms with their signs.
        func terms(_ c0: Double, _ rest: [(Double, String)]) -> String {
            rest.reduce(f(c0)) { $0 + ($1.0 < 0 ? " − " : " + ") + f(abs($1.0)) + "·" + $1.1 }
        }
        let c = p.conditions
        var lines = ["latency profile: B = \(c.batch), T = \(c.sequenceLength), threads = \(c.threads), \(c.kernels) kernels, "
                     + "\(p.pooled ? "pooled" : "span") head, dense D = \(p.model.hiddenSize), "
                     + "\(p.model.layers.first?.heads ?? 0) heads of \(p.model.headDim), FFN \(p.model.layers.first?.ffnWidth ?? 0)",
                     "costs in ms, n = heads or FFN units, D = hidden width:",
                     "  " + Benchmark.pad("base", 15) + terms(p.base.c0, [(p.base.cD, "D")])]
        for (name, b) in [("attention", p.attention), ("last attention", p.lastAttention), ("FFN", p.ffn), ("[CLS] FFN", p.clsFFN)] {
            lines.append("  " + Benchmark.pad(name, 15) + terms(b.c0, [(b.cD, "D"), (b.cN, "n"), (b.cND, "n·D")]))
        }
        if let c = p.calibration {
            lines.append("calibrated on \(c.shapes) whole shapes: measured ≈ " + String(format: "%.4f", c.offset) + " ms + "
                         + String(format: "%.4f", c.scale) + " × the sum of the parts (included above)")
        }
        lines.append("predicted dense model: \(String(format: "%.3f", p.predict(p.model))) ms")
        if !p.checks.isEmpty {
            lines.append("")
            lines.append(Benchmark.pad("check", 6) + Benchmark.pad("D", 5, right: true) + "  "
                         + Benchmark.pad("heads/FFN per layer", 44) + Benchmark.pad("predicted", 10, right: true)
                         + Benchmark.pad("measured", 10, right: true) + Benchmark.pad("error", 9, right: true))
            for (k, check) in p.checks.enumerated() {
                let layers = zip(check.heads, check.ffnUnits).map { "\($0)/\($1)" }.joined(separator: " ")
                lines.append(Benchmark.pad("\(k + 1)", 6) + Benchmark.pad("\(check.hidden)", 5, right: true) + "  "
                             + Benchmark.pad(layers, 44)
                             + Benchmark.pad(String(format: "%.3f", check.predictedMs), 10, right: true)
                             + Benchmark.pad(String(format: "%.3f", check.measuredMs), 10, right: true)
                             + Benchmark.pad(String(format: "%+.1f%%", 100 * check.relativeError), 9, right: true))
            }
            let s = LatencyProfiler.summary(p.checks)
            lines.append(String(format: "check error: mean |error| %.1f %%, max |error| %.1f %%, %d of %d within 10 %%",
                                100 * s.meanAbs, 100 * s.maxAbs, s.within10, p.checks.count))
        }
        lines.append(String(format: "profiled in %.1f s", seconds))
        return lines.joined(separator: "\n")
    }

    private static func note(_ message: String) {
        FileHandle.standardError.write(Data("[profile] \(message)\n".utf8))
    }
}

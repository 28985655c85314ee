// cofi-bench: release-mode speed of the BERT encoder on three model shapes, for side-by-side comparison with the
// PyTorch peer harness `scripts/peer_bench.py` (same workloads, same JSON lines; `scripts/bench.sh` runs both).
//
// Workloads, every token real (no padding), random weights (vocab 30,522, 2 labels):
//   fwd_b1       training-path forward, B = 1, inference mode, no graph (`withoutGradients`), for each T of
//                `--lengths` (default 32, 128, 384)                                   → latency
//   fwd_b32      training-path forward, B = 32, T = 128, inference mode, no graph     → throughput
//   fwd_bwd_b32  forward + backward, B = 32, T = 128, dropout on, cross-entropy on random labels; no optimizer
//                step (gradients are dropped between steps, outside the timed region)
//   engine_b1    the Runtime `InferenceEngine` (packed forward-only path), B = 1, each T of `--lengths` → latency
//   engine_b32   the engine, B = 32, T = 128                                            → throughput
//   fwd_mixed_b32, engine_mixed_b32   B = 32 sequences of seeded random lengths 8…128 (mean ≈ 68): the training
//                path pads them to the longest (attention mask), the engine packs them without padding. GFLOP/s
//                count the real tokens only, so the padded path's padding shows as lost throughput.
// GFLOP/s counts `BertShape.forwardFLOPs(tokens:)` per sequence (encoder linears + attention products), and 3×
// that for forward + backward. The engine's rows count the same FLOPs although, for a classification head, it
// skips the work after the last attention sublayer on every token but [CLS]: its GFLOP/s are "effective".
//
// Repeats: with `--repeats N` every workload runs N timed runs. By default each workload runs as many timed runs
// as fit in `--budget` seconds (default 10) judged from the last warm-up run, clamped to 3…50: BERT-base forward +
// backward at B = 32 takes several seconds a step on 2 cores and so gets 3 runs, while the B = 1 latencies get 50.
// The whole default run takes several minutes on 2 cores. `--warmup N` (default 2) untimed runs come first.
//
// Output: a table on stdout, then one JSON line per measurement:
//   {"impl":"swift","model":…,"workload":…,"batch":…,"seq_len":…,"median_ms":…,"min_ms":…,"seq_per_s":…,
//    "gflops":…,"repeats":…,"cpu_ms":…}  (fwd_bwd_b32 adds "fwd_ms" and "bwd_ms", the medians of the two phases).
// cpu_ms is the median process CPU time (user + system, all threads) of a run: on a loaded machine it is a
// steadier measure of the work than the wall time, and cpu_ms / median_ms shows how many cores the run got.

import BERT
import Dispatch
import Formats
import Foundation
import Runtime
import PackedGEMM
import Platform
import Tensor

// MARK: - Options

struct Options {
    var models = ["bert-base", "minilm-l6", "cofi-s95"]
    var workloads = ["fwd_b1", "fwd_b32", "fwd_bwd_b32", "engine_b1", "engine_b32", "fwd_mixed_b32", "engine_mixed_b32",
                     "gemm_packed", "gemm_blas"]
    var lengths = [32, 128, 384]
    var engineThreads: Int?
    var repeats: Int?
    var warmup = 2
    var budget = 10.0
    var seqLen = 128
    var batch = 32
}

func usage() -> String {
    """
    usage: cofi-bench [--models bert-base,minilm-l6,cofi-s95]
                      [--workloads fwd_b1,fwd_b32,fwd_bwd_b32,engine_b1,engine_b32,fwd_mixed_b32,engine_mixed_b32,
                                   gemm_packed,gemm_blas]
                      [--lengths 32,128,384]
                      [--engine-threads N] [--repeats N] [--warmup N] [--budget SECONDS]
      --models     comma-separated shapes to run (default: all three)
      --workloads  comma-separated workloads to run (default: all nine; gemm_packed / gemm_blas: layer 0's FFN
                   product at T = 128, one thread, on PackedGEMM's pre-packed weights / on BLAS; gemm_avx512,
                   gemm_avx2, gemm_neon, gemm_generic: the same on one kernel family, where it runs; peak_avx512,
                   peak_avx2, peak_neon, peak_generic: that family's register-only FMA peak on one thread;
                   gemm_train_b32: layer 0's training products at B × T rows on all threads)
      --lengths    comma-separated sequence lengths of the B = 1 workloads (default 32,128,384; at most 512)
      --engine-threads  threads of the engine workloads (default: all cores)
      --repeats    timed runs per workload (default: as many as fit in --budget, 3…50)
      --warmup     untimed runs before timing each workload (default 2)
      --budget     seconds of timed runs per workload when --repeats is not given (default 10)
    """
}

func parseOptions(_ args: [String]) -> Options {
    var o = Options()
    var i = 0
    func value(_ flag: String) -> String {
        i += 1
        guard i < args.count else { fail("\(flag) needs a value") }
        return args[i]
    }
    func int(_ flag: String, min lo: Int) -> Int {
        let s = value(flag)
        guard let n = Int(s), n >= lo else { fail("\(flag): expected an integer ≥ \(lo), got '\(s)'") }
        return n
    }
    while i < args.count {
        let a = args[i]
        switch a {
        case "--models":
            o.models = value(a).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            for m in o.models where ModelSpec.named(m) == nil {
                fail("--models: unknown model '\(m)' (known: \(ModelSpec.all.map(\.name).joined(separator: ", ")))")
            }
        case "--workloads":
            let known = o.workloads + ["gemm_train_b\(o.batch)"] + llamaWorkloads
                + KernelFamily.allCases.filter(\.usesPackedGEMM).flatMap { ["gemm_\($0.rawValue)", "peak_\($0.rawValue)"] }
            o.workloads = value(a).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            for w in o.workloads where !known.contains(w) {
                fail("--workloads: unknown workload '\(w)' (known: \(known.joined(separator: ", ")))")
            }
        case "--lengths":
            let s = value(a)
            let ls = s.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !ls.isEmpty, ls.allSatisfy({ $0 != nil && $0! >= 1 && $0! <= 512 }) else {
                fail("--lengths: expected comma-separated integers in 1…512, got '\(s)'")
            }
            o.lengths = ls.map { $0! }
        case "--engine-threads": o.engineThreads = int(a, min: 1)
        case "--repeats": o.repeats = int(a, min: 1)
        case "--warmup": o.warmup = int(a, min: 0)
        case "--budget":
            let s = value(a)
            guard let b = Double(s), b > 0 else { fail("--budget: expected a positive number, got '\(s)'") }
            o.budget = b
        case "-h", "--help":
            print(usage())
            exit(0)
        default:
            fail("unknown argument '\(a)'")
        }
        i += 1
    }
    return o
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(("cofi-bench: " + message + "\n" + usage() + "\n").data(using: .utf8)!)
    exit(2)
}

// MARK: - Model shapes

/// A benchmarked model: its config (dense hyper-parameters) and its per-layer shape.
struct ModelSpec {
    let name: String
    let config: BertConfig
    let shape: BertShape

    static let vocab = 30522

    static var all: [ModelSpec] {
        let base = BertConfig(vocabSize: vocab, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12,
                              intermediateSize: 3072, numLabels: 2)
        let mini = BertConfig(vocabSize: vocab, hiddenSize: 384, numHiddenLayers: 6, numAttentionHeads: 12,
                              intermediateSize: 1536, numLabels: 2)
        // CoFi-s95 (BASELINES.md): BERT-base with these heads and FFN widths kept; empty sublayers are skipped.
        let heads = [2, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0]
        let ffn = [300, 260, 240, 220, 200, 200, 180, 150, 120, 100, 30, 0]
        let s95 = BertShape(vocabSize: vocab, hiddenSize: 768, headDim: 64, maxPositions: 512, typeVocabSize: 2,
                            layers: zip(heads, ffn).map { LayerShape(heads: $0, ffnWidth: $1) })
        return [
            ModelSpec(name: "bert-base", config: base, shape: BertShape(config: base)),
            ModelSpec(name: "minilm-l6", config: mini, shape: BertShape(config: mini)),
            ModelSpec(name: "cofi-s95", config: base, shape: s95),
        ]
    }

    static func named(_ n: String) -> ModelSpec? { all.first { $0.name == n } }
}

// MARK: - Timing

/// Seconds since an arbitrary origin, monotonic.
@inline(__always)
func now() -> Double { Benchmark.now() }

/// Runs `body` `o.warmup` times untimed, then the timed runs (`RepeatPolicy`, 3 … 50 by the budget); `body`
/// returns the seconds of each phase it timed (one entry for a single phase). Returns the per-run phase times, each
/// run's process CPU seconds appended.
func measure(_ o: Options, _ body: () -> [Double]) -> [[Double]] {
    let policy = RepeatPolicy(warmup: o.warmup, repeats: o.repeats, budget: o.budget, bounds: 3...50)
    return policy.run({ () -> [Double] in
        let c0 = Benchmark.cpuTime()
        let phases = body()
        return phases + [Benchmark.cpuTime() - c0]
    }, seconds: { $0.dropLast().reduce(0, +) })
}

func median(_ xs: [Double]) -> Double { Benchmark.median(xs) }

// MARK: - Workloads

struct Result {
    let model: String
    let workload: String
    let batch: Int
    let seqLen: Int
    let runs: [Double]          // seconds per run
    let phases: [String: [Double]]
    let flopsPerRun: Double

    var medianMs: Double { median(runs) * 1e3 }
    var minMs: Double { (runs.min() ?? 0) * 1e3 }
    var seqPerS: Double { Double(batch) / median(runs) }
    var gflops: Double { flopsPerRun / median(runs) / 1e9 }

    func fmt(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }

    var json: String {
        var fields: [(String, Any?)] = [
            ("impl", "swift"), ("model", model), ("workload", workload), ("batch", batch), ("seq_len", seqLen),
            ("median_ms", JSON.Raw(medianMs, digits: 3)), ("min_ms", JSON.Raw(minMs, digits: 3)),
            ("seq_per_s", JSON.Raw(seqPerS, digits: 3)), ("gflops", JSON.Raw(gflops, digits: 2)), ("repeats", runs.count),
        ]
        for (k, v) in phases.sorted(by: { $0.key < $1.key }) { fields.append((k, JSON.Raw(median(v) * 1e3, digits: 3))) }
        return JSON.object(fields)
    }
}

/// Random ids in 1..<vocab (never the pad id 0), every token real.
func randomBatch(batch: Int, seqLen: Int, vocab: Int, rng: inout Xoshiro256) -> BertBatch {
    let ids = (0..<(batch * seqLen)).map { _ in 1 + Int(rng.next() % UInt64(vocab - 1)) }
    return BertBatch(batch: batch, seqLen: seqLen, inputIds: ids)
}

func forwardInference(_ model: BertModel, _ batch: BertBatch) -> [Double] {
    let t0 = now()
    let logits = withoutGradients { () -> Tensor in
        var mode = ForwardMode.inference
        return model(batch, mode: &mode).logits!.value
    }
    let t1 = now()
    Benchmark.sink += logits.scalars[0]
    return [t1 - t0]
}

/// The rows of `batch` as the engine's inputs.
func encodedInputs(_ batch: BertBatch) -> [EncodedInput] {
    (0..<batch.batch).map { b in
        let r = (b * batch.seqLen)..<((b + 1) * batch.seqLen)
        return EncodedInput(tokenIds: Array(batch.inputIds[r]), tokenTypeIds: Array(batch.tokenTypeIds[r]))
    }
}

func engineForward(_ engine: InferenceEngine, _ inputs: [EncodedInput]) -> [Double] {
    let t0 = now()
    let out = try! engine.run(inputs)
    let t1 = now()
    Benchmark.sink += out[0].logits[0]
    return [t1 - t0]
}

func runModel(_ spec: ModelSpec, _ o: Options) -> [Result] {
    let T = o.seqLen, B = o.batch
    let model = BertModel.randomlyInitialized(config: spec.config, shape: spec.shape, task: .classification(labels: 2),
                                              seed: 0)
    var rng = Xoshiro256(seed: 1234)
    let many = randomBatch(batch: B, seqLen: T, vocab: spec.shape.vocabSize, rng: &rng)
    let labels = (0..<B).map { _ in Int(rng.next() % 2) }
    let flopsPerSeq = spec.shape.forwardFLOPs(tokens: T)
    let params = model.namedParameters.map(\.1)
    var results: [Result] = []
    /// Measures a single-phase workload (`body` returns its seconds) and records it.
    func timed(_ workload: String, batch: Int, seqLen: Int, flops: Double, _ body: () -> [Double]) {
        let r = measure(o, body)
        results.append(Result(model: spec.name, workload: workload, batch: batch, seqLen: seqLen, runs: r.map { $0[0] },
                              phases: ["cpu_ms": r.map { $0.last! }], flopsPerRun: flops))
        report(results.last!)
    }

    // One sequence of each benchmarked length, shared by the training path and the engine.
    let singles = o.lengths.map { randomBatch(batch: 1, seqLen: $0, vocab: spec.shape.vocabSize, rng: &rng) }
    if o.workloads.contains("fwd_b1") {
        for one in singles {
            timed("fwd_b1", batch: 1, seqLen: one.seqLen, flops: spec.shape.forwardFLOPs(tokens: one.seqLen)) {
                forwardInference(model, one)
            }
        }
    }
    if o.workloads.contains("fwd_b\(B)") {
        timed("fwd_b\(B)", batch: B, seqLen: T, flops: flopsPerSeq * Double(B)) { forwardInference(model, many) }
    }
    // The kernel alone: layer 0's FFN input product (T = 128 rows, D → I), one thread, on the engine's packed
    // weights and on BLAS (which packs the weights on every call).
    // `peak_<family>`: that family's register-only FMA peak on one thread, the denominator of "% of peak".
    for family in KernelFamily.allCases where family.usesPackedGEMM && o.workloads.contains("peak_\(family.rawValue)") {
        guard KernelFamily.available.contains(family) else {
            print("peak_\(family.rawValue): skipped, \(KernelFamily.unavailability(family) ?? "unavailable")")
            continue
        }
        let iterations = 20_000_000
        timed("peak_\(family.rawValue)", batch: 1, seqLen: 0,
              flops: PackedGEMM.fmaPeak(family: family, iterations: 1).flops * Double(iterations)) {
            let t0 = now()
            Benchmark.sink += PackedGEMM.fmaPeak(family: family, iterations: iterations).value
            return [now() - t0]
        }
    }
    // `gemm_<family>` runs one packed kernel family (`gemm_packed`: the selected one).
    let familyKinds = KernelFamily.allCases.filter(\.usesPackedGEMM).map { "gemm_\($0.rawValue)" }
    for kind in ["gemm_packed", "gemm_blas"] + familyKinds where o.workloads.contains(kind) {
        let family = KernelFamily(rawValue: String(kind.dropFirst("gemm_".count))).flatMap { $0.usesPackedGEMM ? $0 : nil }
        if let family, !KernelFamily.available.contains(family) {
            print("\(kind): skipped, \(KernelFamily.unavailability(family) ?? "unavailable")")
            continue
        }
        let saved = PackedGEMM.family
        defer { PackedGEMM.family = saved }
        if let family { PackedGEMM.family = family }
        let m = 128, k = spec.shape.hiddenSize, n = max(1, spec.shape.layers.first?.ffnWidth ?? k)
        let a = (0..<(m * k)).map { _ in Float(rng.next() % 2001) / 1000 - 1 }
        let w = (0..<(n * k)).map { _ in Float(rng.next() % 2001) / 1000 - 1 }
        var c = [Float](repeating: 0, count: m * n)
        let packed = w.withUnsafeBufferPointer { PackedMatrix(weights: $0.baseAddress!, n: n, k: k) }
        timed(kind, batch: 1, seqLen: m, flops: Double(2 * m * n * k)) {
            let t0 = now()
            a.withUnsafeBufferPointer { ap in w.withUnsafeBufferPointer { wp in c.withUnsafeMutableBufferPointer { cp in
                if kind != "gemm_blas" {
                    PackedGEMM.multiply(ap.baseAddress!, lda: k, m: m, by: packed, panels: 0..<packed.panelCount,
                                        bias: nil, into: cp.baseAddress!, ldc: n)
                } else {
                    BLAS.gemmSerial(transA: false, transB: true, m: m, n: n, k: k, a: ap.baseAddress!, lda: k,
                                    b: wp.baseAddress!, ldb: k, c: cp.baseAddress!, ldc: n)
                }
            } } }
            Benchmark.sink += c[0]
            return [now() - t0]
        }
        packed.deallocate()
    }
    // The training step's products of layer 0 at B × T rows (`BLAS.gemm`, all workers, packed or not as the
    // process chose): forward FFN in / out, the input gradient of FFN in, both weight gradients, and the first
    // weight gradient's shape with A not transposed (`ffn_in_dw_plain`: the control for reading A transposed).
    if o.workloads.contains("gemm_train_b\(B)") {
        let rows = B * T, D = spec.shape.hiddenSize, I = max(1, spec.shape.layers.first?.ffnWidth ?? D)
        let shapes: [(String, Bool, Bool, Int, Int, Int)] = [
            ("ffn_in_fwd", false, true, rows, I, D), ("ffn_out_fwd", false, true, rows, D, I),
            ("ffn_in_dx", false, false, rows, D, I), ("ffn_in_dw", true, false, I, D, rows),
            ("ffn_out_dw", true, false, D, I, rows), ("ffn_in_dw_plain", false, false, I, D, rows),
        ]
        for (name, transA, transB, m, n, k) in shapes {
            let a = (0..<(m * k)).map { _ in Float(rng.next() % 2001) / 1000 - 1 }
            let b = (0..<(k * n)).map { _ in Float(rng.next() % 2001) / 1000 - 1 }
            var c = [Float](repeating: 0, count: m * n)
            let lda = transA ? m : k, ldb = transB ? k : n
            timed("gemm_\(name)", batch: B, seqLen: T, flops: Double(2 * m * n * k)) {
                let t0 = now()
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                    BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: ap.baseAddress!, lda: lda,
                              b: bp.baseAddress!, ldb: ldb, c: cp.baseAddress!, ldc: n)
                } } }
                Benchmark.sink += c[0]
                return [now() - t0]
            }
        }
    }
    if o.workloads.contains("engine_b1") || o.workloads.contains("engine_b\(B)") {
        let engine = try! InferenceEngine(model: model, threads: o.engineThreads)
        if o.workloads.contains("engine_b1") {
            for one in singles {
                let input = encodedInputs(one)
                timed("engine_b1", batch: 1, seqLen: one.seqLen, flops: spec.shape.forwardFLOPs(tokens: one.seqLen)) {
                    engineForward(engine, input)
                }
            }
        }
        if o.workloads.contains("engine_b\(B)") {
            let input = encodedInputs(many)
            timed("engine_b\(B)", batch: B, seqLen: T, flops: flopsPerSeq * Double(B)) { engineForward(engine, input) }
        }
    }
    if o.workloads.contains("fwd_mixed_b\(B)") || o.workloads.contains("engine_mixed_b\(B)") {
        var lrng = Xoshiro256(seed: 99)
        let lengths = (0..<B).map { _ in 8 + Int(lrng.next() % UInt64(T - 7)) }
        let inputs = lengths.map { n in
            EncodedInput(tokenIds: (0..<n).map { _ in 1 + Int(lrng.next() % UInt64(spec.shape.vocabSize - 1)) })
        }
        let longest = lengths.max()!
        var ids = [Int](repeating: 0, count: B * longest), mask = [Int](repeating: 0, count: B * longest)
        for (b, input) in inputs.enumerated() {
            for (t, id) in input.tokenIds.enumerated() { ids[b * longest + t] = id; mask[b * longest + t] = 1 }
        }
        let padded = BertBatch(batch: B, seqLen: longest, inputIds: ids, attentionMask: mask)
        let realFLOPs = lengths.reduce(0.0) { $0 + spec.shape.forwardFLOPs(tokens: $1) }
        if o.workloads.contains("fwd_mixed_b\(B)") {
            timed("fwd_mixed_b\(B)", batch: B, seqLen: longest, flops: realFLOPs) { forwardInference(model, padded) }
        }
        if o.workloads.contains("engine_mixed_b\(B)") {
            let engine = try! InferenceEngine(model: model, threads: o.engineThreads)
            timed("engine_mixed_b\(B)", batch: B, seqLen: longest, flops: realFLOPs) { engineForward(engine, inputs) }
        }
    }
    guard o.workloads.contains("fwd_bwd_b\(B)") else { return results }

    var mode = ForwardMode(training: true, rng: Xoshiro256(seed: 1))
    let rt = measure(o) { () -> [Double] in
        for p in params { p.grad = nil }
        let t0 = now()
        let loss = crossEntropy(model(many, mode: &mode).logits!, labels: labels)
        let t1 = now()
        loss.backward()
        let t2 = now()
        Benchmark.sink += loss.value.scalars[0]
        return [t1 - t0, t2 - t1]
    }
    for p in params { p.grad = nil }
    results.append(Result(model: spec.name, workload: "fwd_bwd_b\(B)", batch: B, seqLen: T,
                          runs: rt.map { $0[0] + $0[1] },
                          phases: ["fwd_ms": rt.map { $0[0] }, "bwd_ms": rt.map { $0[1] }, "cpu_ms": rt.map { $0[2] }],
                          flopsPerRun: 3 * flopsPerSeq * Double(B)))
    report(results.last!)
    return results
}

// MARK: - Main

func pad(_ s: String, _ w: Int, right: Bool = false) -> String { Benchmark.pad(s, w, right: right) }

let header = pad("model", 11) + pad("workload", 17) + pad("T", 5, right: true) + pad("median ms", 11, right: true) + pad("min ms", 11, right: true)
    + pad("seq/s", 10, right: true) + pad("GFLOP/s", 9, right: true) + pad("runs", 6, right: true)

func row(_ r: Result) -> String {
    pad(r.model, 11) + pad(r.workload, 17) + pad("\(r.seqLen)", 5, right: true) + pad(r.fmt(r.medianMs, 2), 11, right: true)
        + pad(r.fmt(r.minMs, 2), 11, right: true) + pad(r.fmt(r.seqPerS, 2), 10, right: true)
        + pad(r.fmt(r.gflops, 1), 9, right: true) + pad("\(r.runs.count)", 6, right: true)
}

/// Progress on stderr, so stdout holds only the final table and the JSON lines.
func report(_ r: Result) {
    var line = "[cofi-bench] " + row(r)
    if let f = r.phases["fwd_ms"], let b = r.phases["bwd_ms"] {
        line += "   (fwd \(r.fmt(median(f) * 1e3, 1)) ms, bwd \(r.fmt(median(b) * 1e3, 1)) ms)"
    }
    FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
}

let options = parseOptions(Array(CommandLine.arguments.dropFirst()))
FileHandle.standardError.write(("[cofi-bench] \(Parallel.workers) worker threads, T = \(options.seqLen) "
    + "(B = 1: \(options.lengths.map(String.init).joined(separator: ", "))), "
    + "warm-up \(options.warmup), repeats \(options.repeats.map(String.init) ?? "auto (budget \(options.budget) s)")\n")
    .data(using: .utf8)!)
var all: [Result] = []
if options.workloads.contains(where: { !llamaWorkloads.contains($0) }) {
    for name in options.models { all += runModel(ModelSpec.named(name)!, options) }
}
if options.workloads.contains(where: llamaWorkloads.contains) { all += runLlama(options) }

print(header)
for r in all { print(row(r)) }
for r in all { print(r.json) }
if Benchmark.sink.isNaN { FileHandle.standardError.write("[cofi-bench] warning: NaN in outputs\n".data(using: .utf8)!) }

import BERT
import Foundation
import Tasks

extension ModelBenchmark {
    /// The median latency (ms) of one engine call on the model in `directory`: `batch` sequences of exactly
    /// `length` tokens (capped at the model's max positions; `syntheticInputs`), after `policy.warmup` untimed calls,
    /// timed as `policy` says. What `cofi prune` reports as a compact model's measured latency.
    public func latency(of directory: URL, batch: Int, length: Int) throws -> Double {
        let (bert, tokenizer) = try ModelDirectory.loadWithHead(directory, options: loadOptions)
        let engine = try InferenceEngine(model: bert, threads: threads)
        let inputs = Self.syntheticInputs(count: batch, length: min(length, engine.maxPositions), tokenizer: tokenizer,
                                          vocabSize: engine.shape.vocabSize)
        let times = try policy.time { try Self.observe(engine.run(inputs)) }
        return Benchmark.percentile(times, 50) * 1e3
    }
}

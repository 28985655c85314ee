import Llama
import Runtime
import Tensor

/// The decoder-LM workloads (opt-in, not in the default list): a random model of SmolLM2-135M's shape (30 layers,
/// width 576, 9 query heads on 3 KV heads of 64, FFN 1,536, vocabulary 49,152, tied), run by `LlamaDecoder`, batch 1.
/// `llama_prefill`: a prompt of T = 128 random tokens, one pass from an empty cache (seq/s = prompts/s);
/// `llama_decode`: 32 tokens decoded one at a time after that prompt (seq/s = tokens/s). GFLOP/s count 2 FLOPs per
/// weight per token (attention's own products left out).
let llamaWorkloads = ["llama_prefill", "llama_decode"]

func runLlama(_ o: Options) -> [Result] {
    let config = LlamaConfig(vocabSize: 49_152, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30,
                             numAttentionHeads: 9, numKeyValueHeads: 3, headDim: 64, rmsNormEps: 1e-5,
                             ropeTheta: 100_000, maxPositionEmbeddings: 8192, tieWordEmbeddings: true)
    let model = LlamaModel.random(config: config, seed: 0)
    let T = 128, steps = 32
    let decoder = LlamaDecoder(model: model, maxContext: T + steps, chunkRows: T)
    var rng = Xoshiro256(seed: 99)
    let prompt = (0..<T).map { _ in Int(rng.next() % UInt64(config.vocabSize)) }
    let flopsPerToken = 2 * Double(LlamaShape(config: config).parameterCount)
    var results: [Result] = []
    func timed(_ workload: String, batch: Int, flops: Double, _ body: () -> Double) {
        let r = measure(o) { [body()] }
        results.append(Result(model: "smollm2", workload: workload, batch: batch, seqLen: T, runs: r.map { $0[0] },
                              phases: ["cpu_ms": r.map { $0.last! }], flopsPerRun: flops))
        report(results.last!)
    }
    if o.workloads.contains("llama_prefill") {
        timed("llama_prefill", batch: 1, flops: flopsPerToken * Double(T)) {
            decoder.reset()
            let t0 = now()
            Benchmark.sink += decoder.prefill(prompt)[0]
            return now() - t0
        }
    }
    if o.workloads.contains("llama_decode") {
        timed("llama_decode", batch: steps, flops: flopsPerToken * Double(steps)) {
            decoder.reset()
            var logits = decoder.prefill(prompt)
            let t0 = now()
            for _ in 0..<steps { logits = decoder.decode(Sampling.greedy(logits)) }
            Benchmark.sink += logits[0]
            return now() - t0
        }
    }
    return results
}

import BERT
import Foundation
import Tensor
import XCTest
import Tensor
@testable import Runtime

/// Small random models of heterogeneous shapes, random packed inputs, and the training-path forward as the
/// oracle of the inference engine.
enum EngineFixtures {
    /// A small dense config: vocab 61, hidden 32, 4 heads of 8, FFN 64, 24 positions, 3 token types.
    static func config(layers: Int) -> BertConfig {
        BertConfig(vocabSize: 61, hiddenSize: 32, numHiddenLayers: layers, numAttentionHeads: 4,
                   intermediateSize: 64, maxPositionEmbeddings: 24, typeVocabSize: 3, layerNormEps: 1e-12)
    }

    /// A random model with `layers` (heads, FFN width) per layer and residual width `hidden` (≤ 32: a cut
    /// hidden width keeps the pooler at 32, as compaction does).
    static func model(_ layers: [(Int, Int)], hidden: Int = 32, task: TaskHeadKind, seed: UInt64 = 7) -> BertModel {
        let c = config(layers: layers.count)
        let shape = BertShape(vocabSize: c.vocabSize, hiddenSize: hidden, headDim: c.headDim,
                              maxPositions: c.maxPositionEmbeddings, typeVocabSize: c.typeVocabSize,
                              layers: layers.map { LayerShape(heads: $0.0, ffnWidth: $0.1) }, poolerWidth: c.hiddenSize)
        let model = BertModel.randomlyInitialized(config: c, shape: shape, task: task, seed: seed)
        // HF's init leaves biases at 0 and LayerNorms at identity; perturb them so the test sees every parameter.
        var rng = Xoshiro256(seed: seed &+ 1)
        for (name, p) in model.namedParameters where !name.hasSuffix("embeddings.weight") {
            let isGain = name.hasSuffix("LayerNorm.weight")
            p.update { t in
                for i in 0..<t.count {
                    t.scalars[i] = isGain ? 1 + 0.2 * (rng.nextUniform() - 0.5) : t.scalars[i] * 5 + 0.1 * (rng.nextUniform() - 0.5)
                }
            }
        }
        return model
    }

    /// Random sequences of the given lengths (ids over the whole vocabulary, types over the type vocabulary).
    static func inputs(lengths: [Int], shape: BertShape, seed: UInt64) -> [EncodedInput] {
        var rng = Xoshiro256(seed: seed)
        return lengths.map { T in
            EncodedInput(tokenIds: (0..<T).map { _ in Int(rng.next() % UInt64(shape.vocabSize)) },
                         tokenTypeIds: (0..<T).map { _ in Int(rng.next() % UInt64(shape.typeVocabSize)) })
        }
    }

    /// The training path's forward (inference mode, no graph), one sequence at a time: the oracle.
    static func oracle(_ model: BertModel, _ inputs: [EncodedInput]) -> [SequenceOutput] {
        withoutGradients {
            inputs.map { s in
                let T = s.tokenIds.count
                var mode = ForwardMode.inference
                let out = model(BertBatch(batch: 1, seqLen: T, inputIds: s.tokenIds, tokenTypeIds: s.tokenTypeIds),
                                mode: &mode)
                if let logits = out.logits { return SequenceOutput(logits: logits.value.scalars) }
                return SequenceOutput(logits: [], startLogits: out.startLogits!.value.scalars,
                                      endLogits: out.endLogits!.value.scalars)
            }
        }
    }

    /// Largest absolute difference between two output lists (which must agree in count and widths); NaN when
    /// either list holds a NaN or an infinity (`maxAbsDifference`'s rule), so a NaN model never passes.
    static func maxDifference(_ a: [SequenceOutput], _ b: [SequenceOutput]) -> Float {
        precondition(a.count == b.count, "output counts differ: \(a.count) vs \(b.count)")
        var u: [Float] = [], v: [Float] = []
        for (x, y) in zip(a, b) {
            for (p, q) in [(x.logits, y.logits), (x.startLogits, y.startLogits), (x.endLogits, y.endLogits)] {
                precondition(p.count == q.count, "output widths differ: \(p.count) vs \(q.count)")
                u += p
                v += q
            }
        }
        return maxAbsDifference(u, v)
    }

    /// Largest absolute value in an output list (to show the test compares non-trivial numbers).
    static func maxMagnitude(_ a: [SequenceOutput]) -> Float {
        a.flatMap { $0.logits + $0.startLogits + $0.endLogits }.reduce(0) { max($0, abs($1)) }
    }
}

/// The real all-MiniLM-L6-v2 under `.assets/` (fetched by `cofi fetch`), or under `$COFI_ASSETS`.
enum RealMiniLM {
    static var directory: URL {
        if let dir = ProcessInfo.processInfo.environment["COFI_ASSETS"] {
            return URL(fileURLWithPath: dir).appendingPathComponent("all-MiniLM-L6-v2")
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".assets/all-MiniLM-L6-v2")
    }

    /// The model with a freshly initialised `task` head; fails (not skips) when the assets are missing.
    static func load(task: TaskHeadKind) throws -> BertModel {
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("model.safetensors").path) else {
            throw CheckpointError("\(directory.path): the real model is missing; run `swift run cofi fetch` first")
        }
        return try BertModel.load(directory: directory, task: task, seed: 3)
    }
}

import Foundation
import Tensor
import XCTest
@testable import BERT

/// A golden fixture written by scripts/reference/make_golden.py (PyTorch, float64 → stored as F32).
struct GoldenFixture {
    let file: SafetensorsFile
    let meta: [String: Any]

    init(_ name: String) throws {
        let url = Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: "safetensors")!
        file = try SafetensorsFile(contentsOf: url)
        let json = file.metadata["config"] ?? "{}"
        meta = (try JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
    }

    func tensor(_ name: String) throws -> Tensor { try file.tensor(name) }
    func ints(_ name: String) throws -> [Int] { try file.integers(name).values }

    /// The dense config the fixture's model is cut from, with the head's label count and a `cofi` block that
    /// describes the fixture's per-layer shape (the first heads and units kept), as the loader requires.
    var config: BertConfig {
        let heads = meta["heads_per_layer"] as! [Int], ffn = meta["ffn_per_layer"] as! [Int]
        let D = meta["hidden_size"] as! Int, dh = meta["head_dim"] as! Int
        var c = BertConfig(vocabSize: meta["vocab_size"] as! Int, hiddenSize: D, numHiddenLayers: heads.count,
                           numAttentionHeads: D / dh, intermediateSize: ffn.max()!,
                           hiddenDropoutProb: 0, attentionProbsDropoutProb: 0,
                           maxPositionEmbeddings: meta["max_position_embeddings"] as! Int,
                           typeVocabSize: meta["type_vocab_size"] as! Int,
                           layerNormEps: meta["layer_norm_eps"] as! Double).describingHead(task)
        let shape = BertShape(vocabSize: c.vocabSize, hiddenSize: D, headDim: dh, maxPositions: c.maxPositionEmbeddings,
                              typeVocabSize: c.typeVocabSize,
                              layers: zip(heads, ffn).map { LayerShape(heads: $0, ffnWidth: $1) })
        c.compact = CompactLayout(describing: shape, config: c)
        return c
    }

    var task: TaskHeadKind {
        switch meta["task"] as! String {
        case "classification": return .classification(labels: meta["num_labels"] as! Int)
        case "regression": return .regression
        default: return .span
        }
    }

    var batch: BertBatch {
        get throws {
            let ids = try file.integers("inputs.input_ids")
            return BertBatch(batch: ids.shape[0], seqLen: ids.shape[1], inputIds: ids.values,
                             attentionMask: try ints("inputs.attention_mask"),
                             tokenTypeIds: try ints("inputs.token_type_ids"))
        }
    }

    /// The fixture's masks as leaf variables that collect gradients (nil when the fixture is unmasked).
    func masks(layers: Int) throws -> MaskSet? {
        guard meta["masked"] as? Bool == true else { return nil }
        var m = MaskSet(layerCount: layers)
        func leaf(_ n: String) throws -> Variable { Variable(try tensor("masks." + n), requiresGrad: true, name: n) }
        m.hidden = try leaf("hidden_z")
        for l in 0..<layers {
            m.heads[l] = try leaf("layer.\(l).head_z")
            m.attentionLayers[l] = try leaf("layer.\(l).head_layer_z")
            m.intermediate[l] = try leaf("layer.\(l).intermediate_z")
            m.ffnLayers[l] = try leaf("layer.\(l).mlp_z")
        }
        return m
    }
}

/// Max |a − b| and the same relative to max |b| (gradient comparisons use the relative form).
func differences(_ a: Tensor, _ b: Tensor) -> (abs: Float, rel: Float) {
    let d = a.maxAbsDifference(b)
    return (d, d / max(b.maxAbs, 1e-30))
}

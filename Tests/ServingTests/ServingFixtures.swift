import Foundation
import BERT
import Runtime
import Tasks
import Tensor

/// A tiny random model and a word-level tokenizer: predictors in milliseconds, for the batcher and the server.
enum ServingFixtures {
    static let words = ["the", "film", "plot", "was", "good", "great", "fun", "bad", "dull", "awful", "a", "and",
                        "story", "actors", "played", "well", "."]
    /// [PAD] [UNK] [CLS] [SEP] [MASK] and the words: 22 ids, within the model's 40.
    static let tokenizer = try! WordPieceTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)

    /// 2 layers, hidden 16, 2 heads, FFN 24, 16 positions, 2 token types; initializer range 0.5 so that different
    /// texts get clearly different outputs.
    static func predictor(_ task: TaskHeadKind, seed: UInt64 = 5) throws -> Predictor {
        try Predictor(model: model(task, seed: seed), tokenizer: tokenizer, threads: 1)
    }

    /// The predictors' model.
    static func model(_ task: TaskHeadKind, seed: UInt64 = 5) -> BertModel {
        let config = BertConfig(vocabSize: 40, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
                                intermediateSize: 24, maxPositionEmbeddings: 16, typeVocabSize: 2,
                                initializerRange: 0.5)
        return BertModel.randomlyInitialized(config: config, task: task, seed: seed)
    }

    /// `count` different texts of 1 … 6 words.
    static func texts(_ count: Int, offset: Int = 0) -> [String] {
        (0..<count).map { i in
            let k = i + offset
            return (0...(k % 6)).map { words[($0 * 7 + k * 3) % words.count] }.joined(separator: " ")
        }
    }
}

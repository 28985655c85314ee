import Foundation
import Tensor

/// Tokenizes a task's examples for the `Batcher`: `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]` with token types,
/// truncated to `maxLength` (128, `longest_first`) and not padded — each batch is padded to its own longest
/// sequence later. This is Hugging Face's GLUE preprocessing (`tokenizer(a, b, max_length=128, truncation=True)`
/// followed by `DataCollatorWithPadding`).
///
/// Called `TaskEncoder` rather than `Encoder` so that it does not shadow Swift's `Encoder` protocol in this module.
public struct TaskEncoder {
    public let tokenizer: WordPieceTokenizer
    public var maxLength: Int
    public var truncation: Truncation

    public init(tokenizer: WordPieceTokenizer, maxLength: Int = 128, truncation: Truncation = .longestFirst) {
        precondition(maxLength >= 3, "maxLength must leave room for [CLS], [SEP] and a token")
        self.tokenizer = tokenizer
        self.maxLength = maxLength
        self.truncation = truncation
    }

    /// The pad id to give the `Batcher`.
    public var padId: Int { tokenizer.padId }

    /// Encodes one example; `index` is its position in its dataset.
    public func encode(_ example: TextExample, index: Int) -> EncodedExample {
        let e = encode(example.textA, example.textB).encoding
        return EncodedExample(ids: e.ids, typeIds: e.typeIds, label: example.label, index: index)
    }

    // Added for the Runtime's Predictor, which tells the user when their text did not fit.
    /// Encodes one text (or pair) as `encode(_:index:)` does, and says whether truncation removed tokens: true
    /// exactly when the untruncated `[CLS] A [SEP] (B [SEP])` is longer than `maxLength`.
    public func encode(_ a: String, _ b: String? = nil) -> (encoding: Encoding, truncated: Bool) {
        let tokensA = tokenizer.tokenize(a)
        let tokensB = WordPieceTokenizer.secondText(b).map(tokenizer.tokenize)
        let e = tokenizer.encode(tokensA: tokensA, tokensB: tokensB, maxLength: maxLength, truncation: truncation,
                                 padToMaxLength: false)
        let untruncated = tokensA.count + (tokensB?.count ?? 0) + (tokensB == nil ? 2 : 3)
        return (e, e.count < untruncated)
    }

    /// Encodes every example of `dataset`, in order. Large datasets are split across the cores (`Parallel`, chunks
    /// of at least 2,048 examples; the tokenizer is immutable and `Sendable`); the result does not depend on how.
    public func encode(_ dataset: TaskDataset) -> [EncodedExample] {
        let examples = dataset.examples
        var out = [EncodedExample?](repeating: nil, count: examples.count)
        out.withUnsafeMutableBufferPointer { buf in
            let base = SharedPointer(buf.baseAddress!)
            Parallel.forChunks(examples.count, grain: 2048) { range in
                for i in range { (base.base + i).pointee = encode(examples[i], index: i) }
            }
        }
        return out.map { $0! }
    }

    /// Encodes `dataset` and wraps it in a `Batcher` with the tokenizer's pad id.
    public func batcher(_ dataset: TaskDataset, options: BatchingOptions) -> Batcher {
        Batcher(examples: encode(dataset), padId: padId, options: options)
    }
}

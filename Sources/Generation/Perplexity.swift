import Foundation
import Llama

/// The perplexity of a model on a token sequence, with sliding windows as in Hugging Face's perplexity guide.
public struct PerplexityResult: Equatable, Sendable {
    /// Tokens scored: every token but the first, each once.
    public var tokens: Int
    /// Σ −log p(token | its context), in nats.
    public var totalNLL: Double
    /// Windows run.
    public var windows: Int
    /// Tokens the model processed (the windows overlap, so more than `tokens`).
    public var processedTokens: Int
    public var seconds: Double

    public var meanNLL: Double { tokens > 0 ? totalNLL / Double(tokens) : .nan }
    public var perplexity: Double { exp(meanNLL) }
    /// Scored tokens per second.
    public var tokensPerSecond: Double { seconds > 0 ? Double(tokens) / seconds : .nan }
}

public enum Perplexity {
    /// The windows [begin, end) of a sequence of `count` tokens with window `window` and stride `stride`, and the
    /// first token each scores (HF's guide: begin = 0, stride, 2·stride, …; end = min(begin + window, count); a
    /// window scores the tokens from the previous window's end, so each token is scored once, with at least
    /// window − stride tokens of context once the first window is past; the last window ends at `count`).
    public static func windows(count: Int, window: Int, stride: Int) -> [(range: Range<Int>, firstScored: Int)] {
        precondition(window > 0 && stride > 0 && stride <= window, "Perplexity: need 0 < stride ≤ window")
        var out: [(Range<Int>, Int)] = []
        var previousEnd = 0, begin = 0
        while begin < count {
            let end = min(begin + window, count)
            out.append((begin..<end, max(previousEnd, 1)))
            previousEnd = end
            if end == count { break }
            begin += stride
        }
        return out
    }

    /// Scores `ids` with `decoder` (whose `maxContext` must hold `window` tokens) window by window; `progress` is
    /// called after each window with (windows done, windows in all). The decoder is reset before each window.
    public static func evaluate(_ ids: [Int], decoder: LlamaDecoder, window: Int, stride: Int,
                                progress: (Int, Int) -> Void = { _, _ in }) -> PerplexityResult {
        precondition(decoder.maxContext >= window, "Perplexity: the decoder holds \(decoder.maxContext) positions, the window is \(window)")
        let plan = windows(count: ids.count, window: window, stride: stride)
        let V = decoder.model.config.vocabSize, chunk = decoder.chunkRows
        let start = Date()
        var result = PerplexityResult(tokens: 0, totalNLL: 0, windows: 0, processedTokens: 0, seconds: 0)
        for (w, (range, first)) in plan.enumerated() {
            decoder.reset()
            // Row r of the window (token begin + r) predicts token begin + r + 1; rows before first − 1 are context.
            var r = 0
            while r < range.count {
                let n = min(chunk, range.count - r)
                let tokens = Array(ids[(range.lowerBound + r)..<(range.lowerBound + r + n)])
                let lastTarget = range.lowerBound + r + n  // the token the chunk's last row predicts
                if lastTarget < first {
                    _ = decoder.prefill(tokens)
                } else {
                    let logits = decoder.append(tokens, allLogits: true)
                    for i in 0..<n {
                        let target = range.lowerBound + r + i + 1
                        guard target >= first, target < range.upperBound else { continue }
                        result.totalNLL += negativeLogLikelihood(logits, row: i, width: V, target: ids[target])
                        result.tokens += 1
                    }
                }
                r += n
            }
            result.windows += 1
            result.processedTokens += range.count
            progress(w + 1, plan.count)
        }
        result.seconds = Date().timeIntervalSince(start)
        return result
    }

    /// −log softmax(logits[row])[target], in Double.
    public static func negativeLogLikelihood(_ logits: [Float], row: Int, width: Int, target: Int) -> Double {
        logits.withUnsafeBufferPointer { p in
            let base = p.baseAddress! + row * width
            var m = -Double.infinity
            for j in 0..<width { m = max(m, Double(base[j])) }
            var s = 0.0
            for j in 0..<width { s += exp(Double(base[j]) - m) }
            return m + log(s) - Double(base[target])
        }
    }
}

extension LanguageModel {
    /// The perplexity of `text` (tokenized without special tokens' BOS, as the tokenizer encodes) with windows of
    /// `window` tokens (at most the model's context) advancing by `stride`.
    public func perplexity(of text: String, window: Int, stride: Int,
                           progress: (Int, Int) -> Void = { _, _ in }) throws -> PerplexityResult {
        guard window >= 2 else { throw GenerationError("--window must be at least 2 (found \(window))") }
        guard (1...window).contains(stride) else { throw GenerationError("--stride must be in 1…\(window) (the window); found \(stride)") }
        guard window <= config.maxPositionEmbeddings else {
            throw GenerationError("--window \(window) exceeds the model's context of \(config.maxPositionEmbeddings) tokens")
        }
        let ids = tokenizer.encodeIDs(text)
        guard ids.count >= 2 else { throw GenerationError("the text has \(ids.count) token(s); perplexity needs at least 2") }
        let decoder = LlamaDecoder(model: model, maxContext: window)
        return Perplexity.evaluate(ids, decoder: decoder, window: window, stride: stride, progress: progress)
    }
}

/// A text file read for the model: it must exist, be UTF-8 and hold more than white space.
public enum TextFile {
    public static func read(_ url: URL, flag: String) throws -> String {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw GenerationError("\(flag) \(url.path): cannot read the file (\(error.localizedDescription))")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw GenerationError("\(flag) \(url.path): not UTF-8 text")
        }
        guard !text.allSatisfy(\.isWhitespace) else { throw GenerationError("\(flag) \(url.path): the file is empty") }
        return text
    }
}

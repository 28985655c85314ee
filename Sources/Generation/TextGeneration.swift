import Foundation
import Llama
import Tasks
import Tensor

/// How to generate: greedy when `temperature` is 0, else sampling at that temperature from the smallest set of
/// tokens whose probability reaches `topP`, drawn from `Xoshiro256(seed:)`.
public struct GenerationOptions: Sendable {
    public var maxNewTokens: Int
    public var temperature: Double
    public var topP: Double
    public var seed: UInt64
    /// Stop at an end-of-sequence token (it is not part of the text).
    public var stopAtEOS: Bool

    public init(maxNewTokens: Int = 64, temperature: Double = 0, topP: Double = 1, seed: UInt64 = 0, stopAtEOS: Bool = true) {
        self.maxNewTokens = maxNewTokens
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
        self.stopAtEOS = stopAtEOS
    }
}

/// What a generation produced, and how fast.
public struct GenerationResult: Sendable {
    public enum StopReason: String, Sendable { case endOfSequence = "eos", maxTokens = "max_tokens", contextFull = "context_full" }
    public var promptIDs: [Int]
    /// The chosen tokens, the end-of-sequence token left out.
    public var generatedIDs: [Int]
    public var text: String
    public var stopReason: StopReason
    /// Seconds of the prompt's pass, and of the decoding steps after it.
    public var prefillSeconds: Double
    public var decodeSeconds: Double

    public var promptTokensPerSecond: Double { Double(promptIDs.count) / prefillSeconds }
    /// Tokens chosen after the first (the first comes from the prompt's pass) per second of decoding.
    public var generationTokensPerSecond: Double {
        decodeSeconds > 0 ? Double(max(generatedIDs.count + (stopReason == .endOfSequence ? 1 : 0) - 1, 0)) / decodeSeconds : .nan
    }
}

/// Turns token ids into text piece by piece: a piece is released only once its bytes are whole UTF-8 characters,
/// so a character split across tokens prints whole.
public struct IncrementalDecoder {
    public let tokenizer: ByteLevelBPETokenizer
    private var ids: [Int] = []
    private var emittedScalars = 0

    public init(tokenizer: ByteLevelBPETokenizer) { self.tokenizer = tokenizer }

    /// Adds `id` and returns the text that became complete (maybe empty).
    public mutating func append(_ id: Int) throws -> String {
        ids.append(id)
        let text = try tokenizer.decode(ids)
        // A trailing U+FFFD may be a character still missing bytes: hold it back until the next token or `finish`.
        if text.unicodeScalars.last == "\u{FFFD}" { return "" }
        return release(text)
    }

    /// The text still held back (an incomplete character at the end, as U+FFFD).
    public mutating func finish() throws -> String { release(try tokenizer.decode(ids)) }

    private mutating func release(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard scalars.count > emittedScalars else { return "" }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars.dropFirst(emittedScalars))
        emittedScalars = scalars.count
        return String(out)
    }
}

extension LanguageModel {
    /// Generates from `promptIDs` with `options`, calling `onText` with each piece of text as it completes. The
    /// prompt and the new tokens must fit the model's context (`max_position_embeddings`): a longer prompt is an
    /// error; generation stops when the context is full.
    public func generate(promptIDs: [Int], options: GenerationOptions, decoder: LlamaDecoder? = nil,
                         onText: (String) -> Void = { _ in }) throws -> GenerationResult {
        guard !promptIDs.isEmpty else { throw GenerationError("the prompt is empty (no tokens)") }
        let context = config.maxPositionEmbeddings
        guard promptIDs.count < context else {
            throw GenerationError("the prompt has \(promptIDs.count) tokens; the model's context holds \(context) (max_position_embeddings), and one more is needed to generate")
        }
        let decoder = decoder ?? LlamaDecoder(model: model, maxContext: min(context, promptIDs.count + max(options.maxNewTokens, 1)))
        decoder.reset()
        var rng = Xoshiro256(seed: options.seed)
        var text = IncrementalDecoder(tokenizer: tokenizer)
        var result = GenerationResult(promptIDs: promptIDs, generatedIDs: [], text: "", stopReason: .maxTokens,
                                      prefillSeconds: 0, decodeSeconds: 0)
        let eos = endOfSequenceIDs
        var clock = Date()
        var logits = decoder.prefill(promptIDs)
        result.prefillSeconds = Date().timeIntervalSince(clock)
        clock = Date()
        while result.generatedIDs.count < options.maxNewTokens {
            let next = Sampling.sample(logits, temperature: options.temperature, topP: options.topP, rng: &rng)
            if options.stopAtEOS && eos.contains(next) { result.stopReason = .endOfSequence; break }
            result.generatedIDs.append(next)
            let piece = try text.append(next)
            if !piece.isEmpty { result.text += piece; onText(piece) }
            if result.generatedIDs.count == options.maxNewTokens { break }
            if decoder.length >= decoder.maxContext { result.stopReason = .contextFull; break }
            logits = decoder.decode(next)
        }
        result.decodeSeconds = Date().timeIntervalSince(clock)
        let rest = try text.finish()
        if !rest.isEmpty { result.text += rest; onText(rest) }
        return result
    }
}

extension LanguageModel {
    /// The logits of every position of `ids` on the KV-cache decoder, [ids.count · V] (parity checks).
    public func promptLogits(_ ids: [Int]) throws -> [Float] {
        guard !ids.isEmpty, ids.count <= config.maxPositionEmbeddings else {
            throw GenerationError("the prompt has \(ids.count) tokens; expected 1…\(config.maxPositionEmbeddings) (the model's context)")
        }
        return LlamaDecoder(model: model, maxContext: ids.count).append(ids, allLogits: true)
    }
}

import Foundation
import Tensor
import XCTest
@testable import Llama

/// The KV-cache decoder against the training-path forward (its oracle), on random models of mixed shapes.
final class LlamaDecoderTests: XCTestCase {
    static let config = LlamaConfig(vocabSize: 50, hiddenSize: 24, intermediateSize: 40, numHiddenLayers: 4,
                                    numAttentionHeads: 6, numKeyValueHeads: 2, headDim: 6, rmsNormEps: 1e-5,
                                    ropeTheta: 100_000, maxPositionEmbeddings: 40, tieWordEmbeddings: true)

    /// Layers of every kind: dense, one KV group left, no attention, no FFN.
    static let shape: LlamaShape = {
        var s = LlamaShape(config: config)
        s.layers = [LlamaLayerShape(kvHeads: 2, ffnWidth: 40), LlamaLayerShape(kvHeads: 1, ffnWidth: 17),
                    LlamaLayerShape(kvHeads: 0, ffnWidth: 40), LlamaLayerShape(kvHeads: 2, ffnWidth: 0)]
        return s
    }()

    static let tokens = [3, 17, 42, 8, 8, 1, 29, 33, 0, 49, 12, 5, 7]

    /// Logits of every position of `tokens` on the training path, [T · V].
    func oracle(_ model: LlamaModel, _ tokens: [Int]) -> [Float] {
        withoutGradients { model.forward(LlamaBatch(batch: 1, seqLen: tokens.count, tokenIds: tokens)).value.scalars }
    }

    func testPrefillThenDecodeMatchesTheFullForward() {
        let model = LlamaModel.random(config: Self.config, shape: Self.shape, seed: 7, std: 0.3)
        let full = oracle(model, Self.tokens)
        let V = Self.config.vocabSize
        for chunkRows in [64, 3] {   // one pass, and a prompt split across passes
            let decoder = LlamaDecoder(model: model, chunkRows: chunkRows)
            let prompt = 6
            var got = decoder.append(Array(Self.tokens[0..<prompt]), allLogits: true)
            for t in Self.tokens[prompt...] { got += decoder.decode(t) }
            XCTAssertEqual(decoder.length, Self.tokens.count)
            let d = maxAbsDifference(got, full)
            print("decoder (chunk \(chunkRows)): max abs difference to the full forward \(d)")
            XCTAssertTrue(d <= 1e-4, "incremental logits differ by \(d)")
            XCTAssertEqual(got.count, Self.tokens.count * V)
            // prefill returns the last position's logits.
            decoder.reset()
            let last = decoder.prefill(Self.tokens)
            XCTAssertTrue(maxAbsDifference(last, Array(full.suffix(V))) <= 1e-4)
            // The comparison can fail: one earlier token changed changes the last logits.
            decoder.reset()
            var other = Self.tokens
            other[2] = 7
            XCTAssertFalse(maxAbsDifference(decoder.prefill(other), Array(full.suffix(V))) <= 1e-4)
        }
    }

    /// Passes longer than one attention block (32 rows): a 48-row pass (blocks of 32 and 16 rows, each reading the
    /// keys up to its own last row), then a 40-row pass at position 48 (keys of both passes), then decode steps;
    /// every logit against the full forward.
    func testLongPassesAcrossAttentionBlocks() {
        var config = Self.config
        config.maxPositionEmbeddings = 128
        let model = LlamaModel.random(config: config, shape: Self.shape, seed: 11, std: 0.3)
        let tokens = (0..<92).map { ($0 * 13 + 5) % 50 }
        let full = oracle(model, tokens)
        let decoder = LlamaDecoder(model: model, chunkRows: 48)
        var got = decoder.append(Array(tokens[0..<88]), allLogits: true)
        for t in tokens[88...] { got += decoder.decode(t) }
        let d = maxAbsDifference(got, full)
        print("decoder (passes of 48 and 40 rows): max abs difference to the full forward \(d)")
        XCTAssertTrue(d <= 1e-4, "logits differ by \(d)")
        XCTAssertEqual(got.count, full.count)
    }

    /// Products over more than `depthBlock` inputs sum in blocks (width 320: 2 blocks; FFN 600: 3 blocks), against
    /// the full forward.
    func testBlockedSummationOfWideProducts() {
        let config = LlamaConfig(vocabSize: 50, hiddenSize: 320, intermediateSize: 600, numHiddenLayers: 2,
                                 numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 16, rmsNormEps: 1e-5,
                                 ropeTheta: 10_000, maxPositionEmbeddings: 32, tieWordEmbeddings: false)
        XCTAssertGreaterThan(config.intermediateSize, 2 * LlamaDecoder.depthBlock)
        let model = LlamaModel.random(config: config, seed: 13, std: 0.05)
        let tokens = (0..<20).map { ($0 * 7 + 1) % 50 }
        let full = oracle(model, tokens)
        let decoder = LlamaDecoder(model: model)
        var got = decoder.append(Array(tokens[0..<17]), allLogits: true)
        for t in tokens[17...] { got += decoder.decode(t) }
        let d = maxAbsDifference(got, full)
        print("decoder (blocked sums over k = 320 and 600): max abs difference to the full forward \(d)")
        XCTAssertTrue(d <= 1e-4, "logits differ by \(d)")
    }

    func testUntiedDenseModelAndReuseAfterReset() {
        var config = Self.config
        config.tieWordEmbeddings = false
        let model = LlamaModel.random(config: config, seed: 9, std: 0.3)
        // 24 tokens in one pass, then decode steps (one row each).
        let long = (0..<24).map { ($0 * 7 + 3) % 50 }
        let decoder = LlamaDecoder(model: model, maxContext: 30)
        let first = decoder.append(long, allLogits: true)
        decoder.reset()
        let again = decoder.append(long, allLogits: true)
        XCTAssertEqual(first, again)
        let d = maxAbsDifference(first, oracle(model, long))
        print("decoder (24-token pass): max abs difference to the full forward \(d)")
        XCTAssertTrue(d <= 1e-4)
    }

    /// A vocabulary of 1,024 rows: the output layer of a decode step is split into column blocks across the workers.
    func testColumnSplitOutputLayer() {
        var config = Self.config
        config.vocabSize = 1024
        let model = LlamaModel.random(config: config, shape: Self.shape, seed: 12, std: 0.3)
        let tokens = [5, 900, 17, 1023, 64]
        let decoder = LlamaDecoder(model: model)
        var got = decoder.prefill(Array(tokens[0..<2]))
        for t in tokens[2...] { got = decoder.decode(t) }
        let d = maxAbsDifference(got, Array(oracle(model, tokens).suffix(1024)))
        print("decoder (vocabulary 1,024, \(Parallel.workers) workers): max abs difference \(d)")
        XCTAssertTrue(d <= 1e-4)
    }

    func testGreedyGenerationFollowsTheOracle() {
        var config = Self.config
        config.eosTokenIds = []
        let model = LlamaModel.random(config: config, shape: Self.shape, seed: 11, std: 0.5)
        let decoder = LlamaDecoder(model: model)
        let prompt = [4, 9, 30]
        let generated = decoder.generate(prompt: prompt, maxNewTokens: 6, choose: Sampling.greedy)
        XCTAssertEqual(generated.count, 6)
        // Each generated token is the argmax of the full forward over everything before it.
        var context = prompt
        for token in generated {
            let logits = Array(oracle(model, context).suffix(config.vocabSize))
            XCTAssertEqual(token, Sampling.greedy(logits))
            context.append(token)
        }
    }

    func testGenerationStopsAtEndOfSequence() {
        let model = LlamaModel.random(config: Self.config, seed: 5, std: 0.5)
        let decoder = LlamaDecoder(model: model)
        let free = decoder.generate(prompt: [4, 9], maxNewTokens: 5, choose: Sampling.greedy)
        var config = Self.config
        config.eosTokenIds = [free[1]]
        let stopping = LlamaDecoder(model: LlamaModel(config: config, embedTokens: model.embedTokens,
                                                      layers: model.layers, norm: model.norm, lmHead: nil))
        XCTAssertEqual(stopping.generate(prompt: [4, 9], maxNewTokens: 5, choose: Sampling.greedy),
                       Array(free.prefix(free.firstIndex(of: free[1])! + 1)))
    }
}

/// Greedy choice and nucleus sampling.
final class SamplingTests: XCTestCase {
    func testGreedyTakesTheFirstLargestAndSkipsNaN() {
        XCTAssertEqual(Sampling.greedy([0.1, 2, -1, 2]), 1)
        XCTAssertEqual(Sampling.greedy([.nan, -3, -4]), 1)
    }

    func testNucleusKeepsTheSmallestPrefixReachingTopP() {
        let logits = [0.6, 0.3, 0.1].map { Float(Foundation.log($0)) }
        XCTAssertEqual(Sampling.nucleus(logits, temperature: 1, topP: 0.5).map(\.token), [0])
        XCTAssertEqual(Sampling.nucleus(logits, temperature: 1, topP: 0.85).map(\.token), [0, 1])
        XCTAssertEqual(Sampling.nucleus(logits, temperature: 1, topP: 1).map(\.token), [0, 1, 2])
        // A low temperature sharpens: at T = 0.1, 0.6 vs 0.3 becomes 2^10 : 1.
        XCTAssertEqual(Sampling.nucleus(logits, temperature: 0.1, topP: 0.99).map(\.token), [0])
    }

    func testSamplingIsSeededAndFollowsTheProbabilities() {
        let logits = [0.5, 0.3, 0.2].map { Float(Foundation.log($0)) }
        var a = Xoshiro256(seed: 42), b = Xoshiro256(seed: 42)
        let drawsA = (0..<20_000).map { _ in Sampling.sample(logits, temperature: 1, rng: &a) }
        let drawsB = (0..<20_000).map { _ in Sampling.sample(logits, temperature: 1, rng: &b) }
        XCTAssertEqual(drawsA, drawsB)
        for (token, p) in [(0, 0.5), (1, 0.3), (2, 0.2)] {
            let freq = Double(drawsA.filter { $0 == token }.count) / 20_000
            XCTAssertEqual(freq, p, accuracy: 0.015, "token \(token)")
        }
        // top-p 0.7 keeps tokens 0 and 1 only, renormalised to 5/8 and 3/8.
        var rng = Xoshiro256(seed: 1)
        let cut = (0..<20_000).map { _ in Sampling.sample(logits, temperature: 1, topP: 0.7, rng: &rng) }
        XCTAssertFalse(cut.contains(2))
        XCTAssertEqual(Double(cut.filter { $0 == 0 }.count) / 20_000, 0.625, accuracy: 0.015)
        // Temperature 0 is greedy.
        XCTAssertEqual(Sampling.sample(logits, temperature: 0, rng: &rng), 0)
    }
}

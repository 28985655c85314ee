import Foundation
import Formats
import GGUF
import Llama
import Tasks
import Tensor
import TestSupport
import XCTest
@testable import Generation

final class GenerationTests: XCTestCase {
    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-generation-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// Logits of every position of `tokens` on the training path (the oracle), [T · V].
    func oracle(_ model: LlamaModel, _ tokens: [Int]) -> [Float] {
        withoutGradients { model.forward(LlamaBatch(batch: 1, seqLen: tokens.count, tokenIds: tokens)).value.scalars }
    }

    // MARK: Conversion

    func testHuggingFaceDirectoryRoundTripKeepsTensorsAndTokenizer() throws {
        for tied in [true, false] {
            let lm = try TinyLanguageModel.make(tied: tied)
            let dir = try temporaryDirectory().appendingPathComponent("hf")
            try lm.saveHuggingFace(to: dir)
            let back = try LanguageModel.open(dir)
            XCTAssertEqual(back.config, lm.config)
            let before = lm.model.namedParameters, after = back.model.namedParameters
            XCTAssertEqual(before.map(\.0), after.map(\.0))
            for ((name, a), (_, b)) in zip(before, after) {
                XCTAssertEqual(a.value.scalars, b.value.scalars, name)
            }
            XCTAssertEqual(back.tokenizer.tokens, lm.tokenizer.tokens)
            XCTAssertEqual(back.tokenizer.addedTokens, lm.tokenizer.addedTokens)
            XCTAssertEqual(back.tokenizer.mergeList.map { $0.0 + " " + $0.1 }, lm.tokenizer.mergeList.map { $0.0 + " " + $0.1 })
            XCTAssertEqual(back.tokenizer.chatTemplate, lm.tokenizer.chatTemplate)
            XCTAssertEqual(back.tokenizer.eosTokenID, 2)
            let text = "<|im_start|>user\nthe tin café<|im_end|>\n"
            XCTAssertEqual(back.tokenizer.encodeIDs(text), lm.tokenizer.encodeIDs(text))
        }
    }

    func assertSameModel(_ a: LanguageModel, _ b: LanguageModel, file: StaticString = #filePath, line: UInt = #line) {
        var ca = a.config, cb = b.config
        // GGUF stores ε as float32.
        XCTAssertEqual(ca.rmsNormEps, cb.rmsNormEps, accuracy: 1e-12, file: file, line: line)
        ca.rmsNormEps = 0
        cb.rmsNormEps = 0
        XCTAssertEqual(ca, cb, file: file, line: line)
        XCTAssertEqual(a.model.namedParameters.map(\.0), b.model.namedParameters.map(\.0), file: file, line: line)
        for ((name, x), (_, y)) in zip(a.model.namedParameters, b.model.namedParameters) {
            XCTAssertEqual(x.value.shape, y.value.shape, name, file: file, line: line)
            XCTAssertEqual(x.value.scalars, y.value.scalars, name, file: file, line: line)
        }
        XCTAssertEqual(a.tokenizer.tokens, b.tokenizer.tokens, file: file, line: line)
        XCTAssertEqual(a.tokenizer.addedTokens, b.tokenizer.addedTokens, file: file, line: line)
        XCTAssertEqual(a.tokenizer.mergeList.map { $0.0 + " " + $0.1 }, b.tokenizer.mergeList.map { $0.0 + " " + $0.1 }, file: file, line: line)
        XCTAssertEqual(a.tokenizer.chatTemplate, b.tokenizer.chatTemplate, file: file, line: line)
        XCTAssertEqual(a.tokenizer.eosTokenID, b.tokenizer.eosTokenID, file: file, line: line)
    }

    func testGGUFRoundTripsThroughBothFormats() throws {
        for tied in [true, false] {
            let lm = try TinyLanguageModel.make(tied: tied)
            let dir = try temporaryDirectory()
            let gguf = dir.appendingPathComponent("tiny.gguf")
            try lm.saveGGUF(to: gguf)
            let fromGGUF = try LanguageModel.open(gguf)
            assertSameModel(lm, fromGGUF)
            XCTAssertEqual(fromGGUF.config.tieWordEmbeddings, tied)
            // GGUF → HF directory → GGUF → model: the same tensors again, and the same logits.
            try fromGGUF.saveHuggingFace(to: dir.appendingPathComponent("hf"))
            let hf = try LanguageModel.open(dir.appendingPathComponent("hf"))
            assertSameModel(fromGGUF, hf)
            try hf.saveGGUF(to: dir.appendingPathComponent("again.gguf"))
            assertSameModel(fromGGUF, try LanguageModel.open(dir.appendingPathComponent("again.gguf")))
            let ids = lm.tokenizer.encodeIDs("the tin")
            XCTAssertEqual(try lm.promptLogits(ids), try hf.promptLogits(ids))
        }
    }

    func testGGUFOfAnotherArchitectureIsRefusedByName() throws {
        let url = try temporaryDirectory().appendingPathComponent("gpt2.gguf")
        try GGUFWriter.write(metadata: [("general.architecture", .string("gpt2")),
                                        ("tokenizer.ggml.tokens", .array(.string, [.string("a")]))],
                             tensors: [("token_embd.weight", Tensor(shape: [1, 4], scalars: [1, 2, 3, 4]))], to: url)
        XCTAssertThrowsError(try LanguageModel.open(url)) {
            XCTAssertTrue("\($0)".contains("general.architecture is 'gpt2'"), "\($0)")
        }
    }

    func testOpenNamesWhatIsMissing() throws {
        let dir = try temporaryDirectory()
        XCTAssertThrowsError(try LanguageModel.open(dir.appendingPathComponent("nothing.gguf"))) {
            XCTAssertTrue("\($0)".contains("nothing.gguf"), "\($0)")
        }
        XCTAssertThrowsError(try LanguageModel.open(dir)) { XCTAssertTrue("\($0)".contains("config.json"), "\($0)") }
        let notGGUF = dir.appendingPathComponent("text.gguf")
        try Data("hello".utf8).write(to: notGGUF)
        XCTAssertThrowsError(try LanguageModel.open(notGGUF)) { XCTAssertTrue("\($0)".contains("text.gguf"), "\($0)") }
    }

    // MARK: Perplexity

    func testWindowsScoreEveryTokenOnce() {
        for (count, window, stride) in [(10, 4, 2), (10, 4, 4), (9, 16, 8), (17, 5, 3), (1, 4, 2)] {
            var scored: [Int] = []
            for (range, first) in Perplexity.windows(count: count, window: window, stride: stride) {
                XCTAssertLessThanOrEqual(range.count, window)
                scored += Array(first..<range.upperBound)
                // At least window − stride tokens of context once past the first window.
                if range.lowerBound > 0 { XCTAssertGreaterThanOrEqual(first - range.lowerBound, window - stride) }
            }
            XCTAssertEqual(scored, Array(1..<max(count, 1)), "\(count) \(window) \(stride)")
        }
    }

    func testSlidingWindowPerplexityEqualsTheSumOfNLLsByHand() throws {
        let lm = try TinyLanguageModel.make()
        let ids = (0..<37).map { ($0 * 31 + 7) % lm.config.vocabSize }
        let V = lm.config.vocabSize
        for (window, stride) in [(16, 8), (12, 5), (40, 40)] {
            var expected = 0.0, count = 0
            for (range, first) in Perplexity.windows(count: ids.count, window: window, stride: stride) {
                let logits = oracle(lm.model, Array(ids[range]))
                for t in first..<range.upperBound {
                    expected += Perplexity.negativeLogLikelihood(logits, row: t - 1 - range.lowerBound, width: V, target: ids[t])
                    count += 1
                }
            }
            // Chunks of 5 rows so that a window spans several decoder passes.
            let decoder = LlamaDecoder(model: lm.model, maxContext: window, chunkRows: 5)
            var calls = 0
            let result = Perplexity.evaluate(ids, decoder: decoder, window: window, stride: stride) { _, _ in calls += 1 }
            XCTAssertEqual(result.tokens, ids.count - 1)
            XCTAssertEqual(count, ids.count - 1)
            XCTAssertEqual(calls, result.windows)
            XCTAssertEqual(result.totalNLL, expected, accuracy: 1e-4 * abs(expected))
            XCTAssertEqual(result.perplexity, exp(expected / Double(count)), accuracy: 1e-3 * result.perplexity)
        }
    }

    // MARK: Generation

    func testGreedyGenerationIsTheArgmaxOfTheFullForward() throws {
        var lm = try TinyLanguageModel.make(seed: 5)
        let prompt = lm.tokenizer.encodeIDs("the tin")
        var pieces: [String] = []
        let result = try lm.generate(promptIDs: prompt, options: GenerationOptions(maxNewTokens: 12, stopAtEOS: false)) {
            pieces.append($0)
        }
        XCTAssertEqual(result.generatedIDs.count, 12)
        XCTAssertEqual(result.stopReason, .maxTokens)
        var context = prompt
        for token in result.generatedIDs {
            XCTAssertEqual(token, Sampling.greedy(Array(oracle(lm.model, context).suffix(lm.config.vocabSize))))
            context.append(token)
        }
        XCTAssertEqual(pieces.joined(), result.text)
        XCTAssertEqual(result.text, try lm.tokenizer.decode(result.generatedIDs))
        // Stopping at EOS: a model whose EOS is the first greedy token generates nothing.
        var config = lm.config
        config.eosTokenIds = [result.generatedIDs[0]]
        lm = LanguageModel(model: try LlamaModel(config: config, tensors: Dictionary(uniqueKeysWithValues: lm.model.namedParameters.map { ($0.0, $0.1.value) })),
                           tokenizer: lm.tokenizer, source: lm.source)
        let stopped = try lm.generate(promptIDs: prompt, options: GenerationOptions(maxNewTokens: 12))
        XCTAssertEqual(stopped.generatedIDs, [])
        XCTAssertEqual(stopped.stopReason, .endOfSequence)
    }

    func testSeededSamplingIsReproducibleAndTheContextIsChecked() throws {
        let lm = try TinyLanguageModel.make(seed: 9)
        let prompt = lm.tokenizer.encodeIDs("in the")
        let options = GenerationOptions(maxNewTokens: 10, temperature: 1.5, topP: 0.9, seed: 42, stopAtEOS: false)
        let a = try lm.generate(promptIDs: prompt, options: options)
        let b = try lm.generate(promptIDs: prompt, options: options)
        XCTAssertEqual(a.generatedIDs, b.generatedIDs)
        XCTAssertThrowsError(try lm.generate(promptIDs: Array(repeating: 5, count: 48), options: options)) {
            XCTAssertTrue("\($0)".contains("48 tokens"), "\($0)")
        }
        // The context (48 positions) fills before the requested tokens.
        let full = try lm.generate(promptIDs: Array(repeating: 5, count: 40), options: GenerationOptions(maxNewTokens: 20, stopAtEOS: false))
        XCTAssertEqual(full.stopReason, .contextFull)
        XCTAssertEqual(full.generatedIDs.count, 9)  // 8 decoded into the cache, the 9th chosen from the last position
    }

    func testIncrementalDecodingPrintsWholeCharacters() throws {
        let t = try TinyLanguageModel.tokenizer()
        // "é" is two bytes, C3 A9: one token each when the merge is not used.
        let c3 = t.id(of: "Ã")!, a9 = t.id(of: "©")!, x = t.id(of: "x")!
        var d = IncrementalDecoder(tokenizer: t)
        XCTAssertEqual(try d.append(x), "x")
        XCTAssertEqual(try d.append(c3), "")
        XCTAssertEqual(try d.append(a9), "é")
        XCTAssertEqual(try d.append(c3), "")
        XCTAssertEqual(try d.finish(), "\u{FFFD}")
    }

    // MARK: Chat template

    func testChatMLRendering() throws {
        let template = TinyLanguageModel.chatTemplate
        XCTAssertEqual(try ChatTemplate.render([ChatMessage(role: "user", content: "Hi")], template: template),
                       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(try ChatTemplate.render([ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi")],
                                               template: template, addGenerationPrompt: false),
                       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")
        // A ChatML template without a default system message adds none.
        let plain = "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}{% endfor %}"
        XCTAssertEqual(try ChatTemplate.render([ChatMessage(role: "user", content: "Hi")], template: plain),
                       "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertThrowsError(try ChatTemplate.render([], template: "{{ bos_token }}[INST] …")) {
            XCTAssertTrue("\($0)".contains("not ChatML"), "\($0)")
        }
        XCTAssertThrowsError(try ChatTemplate.render([], template: nil)) { XCTAssertTrue("\($0)".contains("no chat template"), "\($0)") }
    }
}

import Foundation
import Llama
import XCTest
@testable import Generation

/// The real SmolLM2-135M-Instruct GGUF file (`cofi fetch`), when present: its config, and three greedy tokens and
/// the top logit of a short prompt against transformers loading the same file (float32; about 7 s in debug).
final class SmolLM2Tests: XCTestCase {
    var gguf: URL {
        let assets = ProcessInfo.processInfo.environment["COFI_ASSETS"].map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".assets")
        return assets.appendingPathComponent("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
    }

    func testGreedyTokensEqualTransformers() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: gguf.path), "SmolLM2 not fetched (cofi fetch)")
        let lm = try LanguageModel.open(gguf)
        let c = lm.config
        XCTAssertEqual([c.numHiddenLayers, c.hiddenSize, c.intermediateSize, c.numAttentionHeads, c.numKeyValueHeads,
                        c.headDim, c.vocabSize, c.maxPositionEmbeddings], [30, 576, 1536, 9, 3, 64, 49152, 8192])
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertEqual(c.eosTokenIds, [2])
        // transformers 5.24, AutoModelForCausalLM.from_pretrained(dir, gguf_file=…, torch_dtype=float32):
        // ids [504, 3575, 282, 4649, 314], greedy [7042, 30, 198] (" Paris.\n"), top logit 17.3713.
        let ids = lm.tokenizer.encodeIDs("The capital of France is")
        XCTAssertEqual(ids, [504, 3575, 282, 4649, 314])
        let logits = try lm.promptLogits(ids).suffix(c.vocabSize)
        XCTAssertEqual(Double(logits.max()!), 17.3713, accuracy: 1e-3)
        let result = try lm.generate(promptIDs: ids, options: GenerationOptions(maxNewTokens: 3))
        XCTAssertEqual(result.generatedIDs, [7042, 30, 198])
        XCTAssertEqual(result.text, " Paris.\n")
        let chat = try ChatTemplate.render([ChatMessage(role: "user", content: "Hi")], template: lm.tokenizer.chatTemplate)
        XCTAssertTrue(chat.hasPrefix("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"), chat)
    }
}

import Foundation
import Generation
import TestSupport
import XCTest

/// `cofi generate`, `cofi perplexity` and `cofi convert` on a tiny random decoder LM (a Hugging Face directory),
/// and their errors on bad input.
final class GenerationCLITests: XCTestCase {
    func workDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-cli-generation-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func tinyModel(in dir: URL) throws -> (LanguageModel, URL) {
        let lm = try TinyLanguageModel.make(seed: 5)
        let url = dir.appendingPathComponent("tiny")
        try lm.saveHuggingFace(to: url)
        return (lm, url)
    }

    func testGenerateStreamsTheGreedyTextAndReportsSpeed() throws {
        let dir = try workDirectory()
        let (lm, model) = try tinyModel(in: dir)
        let expected = try lm.generate(promptIDs: lm.tokenizer.encodeIDs("the tin"),
                                       options: GenerationOptions(maxNewTokens: 6))
        let (status, out, err) = try runCofi(["generate", "--model", model.path, "--prompt", "the tin", "--max-tokens", "6"])
        XCTAssertEqual(status, 0, err)
        XCTAssertEqual(out, expected.text + "\n")
        XCTAssertTrue(err.contains("tokens/s"), err)
        // JSON, chat and sampling.
        let (s2, json, e2) = try runCofi(["generate", "--model", model.path, "--prompt", "Hi", "--chat", "--system", "Be brief.",
                                          "--max-tokens", "4", "--temperature", "0.8", "--top-p", "0.9", "--seed", "3", "--json"])
        XCTAssertEqual(s2, 0, e2)
        let ids = try lm.tokenizer.encodeIDs(ChatTemplate.render([ChatMessage(role: "system", content: "Be brief."),
                                                                    ChatMessage(role: "user", content: "Hi")],
                                                                   template: lm.tokenizer.chatTemplate))
        XCTAssertTrue(json.contains("\"prompt_ids\":[\(ids.map(String.init).joined(separator: ","))]"), json)
    }

    func testPerplexityAndConvert() throws {
        let dir = try workDirectory()
        let (lm, model) = try tinyModel(in: dir)
        let text = dir.appendingPathComponent("text.txt")
        let body = "the tin in the tent, then the thin tin. "
        try Data(body.utf8).write(to: text)
        let expected = try lm.perplexity(of: body, window: 16, stride: 8)
        let (status, out, err) = try runCofi(["perplexity", "--model", model.path, "--text", text.path, "--window", "16",
                                              "--stride", "8", "--json"])
        XCTAssertEqual(status, 0, err)
        let last = out.split(separator: "\n").last.map(String.init) ?? ""
        XCTAssertTrue(last.contains("\"tokens\":\(expected.tokens),"), out)
        XCTAssertTrue(last.contains("\"windows\":\(expected.windows),"), out)
        XCTAssertEqual(out.split(separator: "\n").count, expected.windows + 1)
        // convert: HF directory → GGUF → HF directory, the same tensors.
        let gguf = dir.appendingPathComponent("tiny.gguf"), back = dir.appendingPathComponent("back")
        for args in [["convert", "--model", model.path, "--gguf", gguf.path], ["convert", "--model", gguf.path, "--out", back.path]] {
            let (s, _, e) = try runCofi(args)
            XCTAssertEqual(s, 0, e)
        }
        let reread = try LanguageModel.open(back)
        for ((name, a), (_, b)) in zip(lm.model.namedParameters, reread.model.namedParameters) {
            XCTAssertEqual(a.value.scalars, b.value.scalars, name)
        }
        // convert names a missing input.
        let (s2, _, e2) = try runCofi(["convert", "--model", dir.appendingPathComponent("missing.gguf").path, "--out",
                                       dir.appendingPathComponent("hf").path])
        XCTAssertNotEqual(s2, 0)
        XCTAssertTrue(e2.contains("missing.gguf"), e2)
    }

    func testBadInputsNameTheFileOrFlag() throws {
        let dir = try workDirectory()
        let (_, model) = try tinyModel(in: dir)
        let empty = dir.appendingPathComponent("empty.txt"), binary = dir.appendingPathComponent("binary.txt")
        try Data("  \n".utf8).write(to: empty)
        try Data([0xFF, 0xFE, 0x80]).write(to: binary)
        let good = dir.appendingPathComponent("good.txt")
        try Data("the tin".utf8).write(to: good)
        let notModel = dir.appendingPathComponent("notmodel")
        try FileManager.default.createDirectory(at: notModel, withIntermediateDirectories: true)
        let cases: [([String], String)] = [
            (["generate", "--model", dir.appendingPathComponent("none.gguf").path, "--prompt", "x"], "none.gguf"),
            (["generate", "--model", notModel.path, "--prompt", "x"], "config.json"),
            (["generate", "--model", model.path, "--prompt", String(repeating: "x ", count: 60)], "context"),
            (["generate", "--model", model.path, "--prompt", "x", "--chat", "--system", "s", "--top-p", "0"], "--top-p"),
            (["generate", "--model", model.path, "--prompt", "x", "--system", "s"], "--chat"),
            (["perplexity", "--model", model.path, "--text", empty.path], "empty"),
            (["perplexity", "--model", model.path, "--text", binary.path], "not UTF-8"),
            (["perplexity", "--model", model.path, "--text", dir.appendingPathComponent("no.txt").path], "no.txt"),
            (["perplexity", "--model", model.path, "--text", good.path, "--window", "4096"], "--window"),
            (["perplexity", "--model", model.path, "--text", good.path, "--window", "16", "--stride", "17"], "--stride"),
        ]
        for (args, needle) in cases {
            let (status, _, err) = try runCofi(args)
            XCTAssertNotEqual(status, 0, args.joined(separator: " "))
            XCTAssertTrue(err.contains(needle), "\(args.joined(separator: " ")): \(err)")
        }
    }
}

import Foundation
import XCTest
@testable import Tasks

/// Loading, errors, truncation rules and decoding on tiny hand-made tokenizers (no assets needed). Expected values
/// were printed by tokenizers 0.23.3 / transformers 5.24 for the same inputs.
final class TokenizerTests: XCTestCase {
    static let tinyVocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "new", "york", ",",
                            "!", "cafe", "caf", "##e", "[", "]", "<", ">"]

    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-tokenizer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func write(_ name: String, _ text: String) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    /// A tokenizer.json as tokenizers writes it, with an added token matched after normalization ("New York") and
    /// one matched on the raw text ("<Ent>"), both outside the model vocabulary.
    func tinyTokenizerJSON(modelType: String = "WordPiece", addedExtra: String = "", preTokenizer: String = "BertPreTokenizer") -> String {
        let vocab = Self.tinyVocab.enumerated().map { "\"\($1)\": \($0)" }.joined(separator: ", ")
        let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].enumerated().map { i, t in
            "{\"id\": \(i), \"content\": \"\(t)\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}"
        }.joined(separator: ", ")
        return """
            {"version": "1.0", "truncation": null, "padding": null,
             "added_tokens": [\(specials),
               {"id": 19, "content": "New York", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false},
               {"id": 20, "content": "<Ent>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}\(addedExtra)],
             "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
             "pre_tokenizer": {"type": "\(preTokenizer)"},
             "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
             "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
             "model": {"type": "\(modelType)", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                       "vocab": {\(vocab)}}}
            """
    }

    func testTokenizerJSONWithAddedTokensMatchesHF() throws {
        _ = try write("tokenizer.json", tinyTokenizerJSON())
        let t = try WordPieceTokenizer.load(directory: directory)
        XCTAssertEqual(t.idToToken.count, 21)
        XCTAssertEqual([t.clsId, t.sepId, t.padId, t.unkId, t.maskId], [2, 3, 0, 1, 4])
        var e = t.encode("Hello NEW YORK worlds, café!")
        XCTAssertEqual(e.ids, [2, 5, 19, 6, 7, 10, 12, 11, 3])
        XCTAssertEqual(e.offsets, [nil, 0..<5, 6..<14, 15..<20, 20..<21, 21..<22, 23..<27, 27..<28, nil])
        e = t.encode("new yorkers <Ent> <ent> [MASK]")
        XCTAssertEqual(e.ids, [2, 19, 1, 20, 17, 1, 18, 4, 3])
        XCTAssertEqual(e.offsets, [nil, 0..<8, 8..<11, 12..<17, 18..<19, 19..<22, 22..<23, 24..<30, nil])
        e = t.encode("NewYork new  york")
        XCTAssertEqual(e.ids, [2, 1, 8, 9, 3])
        XCTAssertEqual(e.offsets, [nil, 0..<7, 8..<11, 13..<17, nil])
        // Only special added tokens are skipped when decoding.
        XCTAssertEqual(t.decode([2, 5, 19, 6, 7, 10, 12, 11, 1, 3]), "hello New York worlds, cafe!")
        XCTAssertEqual(t.decode([2, 5, 3], skipSpecialTokens: false), "[CLS] hello [SEP]")
    }

    func testVocabTxtWithTokenizerConfig() throws {
        _ = try write("vocab.txt", Self.tinyVocab.joined(separator: "\n") + "\n")
        var t = try WordPieceTokenizer.load(directory: directory)
        XCTAssertTrue(t.doLowerCase && t.stripAccents)
        XCTAssertEqual(t.encode("Hello café").ids, [2, 5, 12, 3])
        _ = try write("tokenizer_config.json", #"{"do_lower_case": false, "strip_accents": true, "cls_token": {"content": "[CLS]"}}"#)
        t = try WordPieceTokenizer.load(directory: directory)
        XCTAssertFalse(t.doLowerCase)
        XCTAssertTrue(t.stripAccents)
        XCTAssertEqual(t.encode("Hello café").ids, [2, 1, 12, 3])
        _ = try write("tokenizer_config.json", #"{"do_lower_case": "yes"}"#)
        assertError(try WordPieceTokenizer.load(directory: directory), ["tokenizer_config.json", "do_lower_case", "\"yes\"", "true or false"])
    }

    func testVocabularyErrorsNameFileAndLine() throws {
        let dup = try write("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\nhello\n")
        assertError(try WordPieceTokenizer.load(vocabFile: dup, doLowerCase: true), [dup.path, "line 7", "duplicate token \"hello\"", "line 5"])
        let noCLS = try write("vocab2.txt", "[PAD]\n[UNK]\n[SEP]\nhello\n")
        assertError(try WordPieceTokenizer.load(vocabFile: noCLS, doLowerCase: true), [noCLS.path, "\"[CLS]\"", "not in the vocabulary"])
        let missing = directory.appendingPathComponent("nope.txt")
        assertError(try WordPieceTokenizer.load(vocabFile: missing, doLowerCase: true), [missing.path, "cannot read"])
        let bad = directory.appendingPathComponent("latin1.txt")
        try Data([0x5B, 0x43, 0x4C, 0x53, 0x5D, 0x0A, 0xE9, 0x0A]).write(to: bad)
        assertError(try WordPieceTokenizer.load(vocabFile: bad, doLowerCase: true), [bad.path, "UTF-8"])
        assertError(try WordPieceTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "a"]), ["duplicate token \"a\"", "ids 4 and 5"])
        assertError(try WordPieceTokenizer(vocabulary: ["[PAD]", "[CLS]", "[SEP]"]), ["\"[UNK]\"", "not in the vocabulary"])
        assertError(try WordPieceTokenizer.load(directory: directory.appendingPathComponent("empty")), ["tokenizer.json", "vocab.txt"])
    }

    func testTokenizerJSONErrorsNameThePath() throws {
        _ = try write("tokenizer.json", tinyTokenizerJSON(modelType: "BPE"))
        assertError(try WordPieceTokenizer.load(directory: directory), ["tokenizer.json", "model.type", "\"BPE\"", "\"WordPiece\""])
        _ = try write("tokenizer.json", tinyTokenizerJSON(preTokenizer: "Whitespace"))
        assertError(try WordPieceTokenizer.load(directory: directory), ["pre_tokenizer.type", "\"Whitespace\""])
        _ = try write("tokenizer.json", tinyTokenizerJSON(addedExtra: #", {"id": 21, "content": "x", "lstrip": true, "special": false}"#))
        assertError(try WordPieceTokenizer.load(directory: directory), ["added_tokens[7]", "lstrip", "not support"])
        _ = try write("tokenizer.json", tinyTokenizerJSON(addedExtra: #", {"id": 5, "content": "x", "special": false}"#))
        assertError(try WordPieceTokenizer.load(directory: directory), ["added_tokens[7]", "\"x\"", "id 5", "\"hello\""])
        _ = try write("tokenizer.json", tinyTokenizerJSON().replacingOccurrences(of: "\"hello\": 5", with: "\"hello\": \"5\""))
        assertError(try WordPieceTokenizer.load(directory: directory), ["model.vocab[\"hello\"]", "an integer"])
        _ = try write("tokenizer.json", tinyTokenizerJSON().replacingOccurrences(of: "\"world\": 6", with: "\"world\": 5"))
        assertError(try WordPieceTokenizer.load(directory: directory), ["model.vocab", "id 5", "both"])
        _ = try write("tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", ")
        assertError(try WordPieceTokenizer.load(directory: directory), ["tokenizer.json", "invalid JSON"])
        _ = try write("tokenizer.json", "{\"model\": {\"type\": \"WordPiece\",\n  \"vocab\": {\"a\": }}}")
        assertError(try WordPieceTokenizer.load(directory: directory), ["tokenizer.json", "invalid JSON", "line 2, column 18"])
    }

    func assertError<T>(_ body: @autoclosure () throws -> T, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try body()
            XCTFail("no error; expected one mentioning \(fragments)", file: file, line: line)
        } catch {
            let text = "\(error)"
            for f in fragments where !text.contains(f) { XCTFail("\(quoted(text)) lacks \(quoted(f))", file: file, line: line) }
        }
    }

    func tiny() throws -> WordPieceTokenizer {
        try WordPieceTokenizer(vocabulary: Self.tinyVocab + ["a", "b", "c", "d", "e", "f", "g", "h"])
    }

    /// tokenizers' truncate_encodings: budget = max_length − specials; longest_first gives the longer text
    /// max/2 + max%2 when both must shrink; max_length below the specials truncates nothing.
    func testTruncationRules() throws {
        let t = try tiny()
        let a = "a b c d e f g", b = "h h h"
        func ids(_ m: Int, _ s: Truncation) -> [Int] { t.encode(a, b, maxLength: m, truncation: s).ids }
        let A = t.tokenize(a).map(\.id), B = t.tokenize(b).map(\.id)
        XCTAssertEqual(ids(9, .longestFirst), [2] + A.prefix(3) + [3] + B + [3])
        XCTAssertEqual(ids(6, .longestFirst), [2] + A.prefix(2) + [3] + B.prefix(1) + [3])  // budget 3: 2 + 1
        XCTAssertEqual(ids(5, .longestFirst), [2] + A.prefix(1) + [3] + B.prefix(1) + [3])
        XCTAssertEqual(ids(3, .onlyFirst), [2, 3, 3], "budget 0 empties both, whatever the strategy")
        XCTAssertEqual(ids(2, .longestFirst), [2] + A + [3] + B + [3], "below the special tokens: untruncated")
        XCTAssertEqual(ids(9, .onlySecond), [2] + A.prefix(3) + [3] + B + [3], "only_second impossible: longest_first")
        XCTAssertEqual(t.encode(a, b, maxLength: 9, truncation: .onlySecond), t.encode(a, b, maxLength: 9, truncation: .longestFirst))
        XCTAssertThrowsError(try t.encodeChecked(a, b, maxLength: 9, truncation: .onlySecond)) { e in
            XCTAssertEqual("\(e)", "Truncation error: Sequence to truncate too short to respect the provided max_length")
        }
        XCTAssertThrowsError(try t.encodeChecked(a, maxLength: 4, truncation: .onlySecond))
        XCTAssertEqual(try t.encodeChecked(a, b, maxLength: 9, truncation: .onlyFirst).ids, [2] + A.prefix(3) + [3] + B + [3])
        XCTAssertEqual(t.encode(a, maxLength: 4, truncation: .none).ids, [2] + A + [3])
        let padded = t.encode("a", maxLength: 6, truncation: .none, padToMaxLength: true)
        XCTAssertEqual(padded.ids, [2, t.vocabulary["a"]!, 3, 0, 0, 0])
        XCTAssertEqual(padded.attentionMask, [1, 1, 1, 0, 0, 0])
        XCTAssertEqual(padded.sequenceIds, [nil, 0, nil, nil, nil, nil])
        XCTAssertEqual(padded.offsets, [nil, 0..<1, nil, nil, nil, nil])
    }

    func testPairsFromTokensAndTheEmptySecondText() throws {
        let t = try tiny()
        XCTAssertEqual(t.encode("hello", "").ids, [2, 5, 3], "HF: an empty text_pair is no pair")
        XCTAssertEqual(t.encode(tokensA: t.tokenize("hello"), tokensB: []).ids, [2, 5, 3, 3])
        let e = t.encode("hello", "new worlds")
        XCTAssertEqual(e, t.encode(tokensA: t.tokenize("hello"), tokensB: t.tokenize("new worlds")))
        XCTAssertEqual(e.typeIds, [0, 0, 0, 1, 1, 1, 1])
        XCTAssertEqual(e.sequenceIds, [nil, 0, nil, 1, 1, 1, nil])
        XCTAssertEqual(e.offsets, [nil, 0..<5, nil, 0..<3, 4..<9, 9..<10, nil])
    }

    func testDecodeMergesContinuationsAndCleansUp() throws {
        let t = try tiny()
        let ids = t.encode("hello , worlds ! caf e [MASK]").ids
        XCTAssertEqual(t.decode(ids), "hello, worlds! caf e")
        XCTAssertEqual(t.decode(ids, skipSpecialTokens: false), "[CLS] hello, worlds! caf e [MASK] [SEP]")
        XCTAssertEqual(t.decode([7, 5, 7, 999, -1]), "##s hellos", "a leading ## stays; unknown ids are skipped")
    }

    /// The tokenizer is Sendable: many threads at once give the same tokens.
    func testConcurrentUse() throws {
        let t = try tiny()
        let text = "Hello new worlds, café! [MASK] 中文"
        let expected = t.tokenize(text)
        let results = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 64)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 64) { i in results[i] = t.tokenize(text) == expected }
        XCTAssertTrue(results.allSatisfy { $0 })
    }
}

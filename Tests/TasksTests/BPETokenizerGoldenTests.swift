import Foundation
import GGUF
import XCTest
import ZIPFoundation
@testable import Tasks

/// The byte-level BPE tokenizer against Hugging Face on scripts/reference/make_bpe_golden.py's corpus (1,137 lines
/// of prose, code, numbers, punctuation and whitespace runs, many scripts, emoji, special tokens in text): the
/// SmolLM2 tokenizer read from the fetched GGUF file, and a small tokenizer.json trained by `tokenizers`.
final class BPETokenizerGoldenTests: XCTestCase {
    struct Record: Decodable {
        let text: String
        let ids: [Int]
        let offsets: [Int]
        let tiny_ids: [Int]
        let tiny_offsets: [Int]
    }

    static func fixture(_ name: String) -> URL {
        Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)!
    }

    /// The corpus and HF's answers, read from the zip once per process.
    static let records: Result<[Record], Error> = Result {
        let archive = try Archive(url: fixture("bpe_golden.zip"), accessMode: .read)
        guard let entry = archive["bpe_golden.jsonl"] else { throw TokenizerError("bpe_golden.zip has no bpe_golden.jsonl") }
        var data = Data()
        _ = try archive.extract(entry) { data.append($0) }
        let lines = data.split(separator: 0x0A)
        let header = try JSONSerialization.jsonObject(with: lines[0]) as? [String: Any]
        let records = try lines.dropFirst().map { try JSONDecoder().decode(Record.self, from: $0) }
        guard records.count == header?["corpus"] as? Int else { throw TokenizerError("bpe_golden.jsonl: record count differs from its header") }
        return records
    }

    static var ggufURL: URL {
        let assets = ProcessInfo.processInfo.environment["COFI_ASSETS"].map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent(".assets")
        return assets.appendingPathComponent(Asset.smolLM2.directory).appendingPathComponent(Asset.smolLM2File)
    }

    /// SmolLM2's tokenizer from the fetched GGUF file, loaded once per process; the test skips without the file.
    static let smolLM2: Result<ByteLevelBPETokenizer, Error> = Result {
        try ByteLevelBPETokenizer(gguf: try GGUFFile(contentsOf: ggufURL))
    }

    static func requireSmolLM2() throws -> ByteLevelBPETokenizer {
        guard FileManager.default.fileExists(atPath: ggufURL.path) else {
            throw XCTSkip("\(ggufURL.path) is missing: run `swift run cofi fetch` to test the SmolLM2 tokenizer")
        }
        return try smolLM2.get()
    }

    /// Compares `tokenizer` with the expected ids and flat offsets of every record; returns the number of lines
    /// compared and prints the first mismatches.
    func compare(_ tokenizer: ByteLevelBPETokenizer, _ expected: (Record) -> ([Int], [Int]), label: String) throws -> Int {
        var mismatches = 0, tokens = 0
        let records = try Self.records.get()
        for (n, r) in records.enumerated() {
            let got = tokenizer.encode(r.text)
            let (ids, offsets) = expected(r)
            tokens += got.count
            let gotOffsets = got.flatMap { [$0.start, $0.end] }
            if got.map(\.id) != ids || gotOffsets != offsets {
                mismatches += 1
                if mismatches <= 5 {
                    print("\(label) line \(n) \(r.text.debugDescription.prefix(200)):\n  ids  \(got.map(\.id)) vs HF \(ids)\n  offs \(gotOffsets) vs HF \(offsets)")
                }
            }
            let decoded = try tokenizer.decode(got.map(\.id))
            if decoded != r.text && !r.text.contains("<s>") {
                mismatches += 1
                print("\(label) line \(n): decodes to \(decoded.debugDescription.prefix(200))")
            }
        }
        print("\(label): \(records.count) lines, \(tokens) tokens, \(mismatches) mismatches")
        XCTAssertEqual(mismatches, 0, label)
        return records.count
    }

    func testSmolLM2FromGGUFMatchesHuggingFaceOnEveryLine() throws {
        let tokenizer = try Self.requireSmolLM2()
        XCTAssertEqual(tokenizer.tokens.count, 49_152)
        XCTAssertEqual(tokenizer.addedTokens.count, 17)
        XCTAssertEqual(tokenizer.addedTokens.first, .init(content: "<|endoftext|>", id: 0, special: true))
        XCTAssertEqual([tokenizer.bosTokenID, tokenizer.eosTokenID, tokenizer.unknownTokenID, tokenizer.paddingTokenID], [1, 2, 0, 2])
        XCTAssertFalse(tokenizer.addsBOS)
        XCTAssertTrue(tokenizer.chatTemplate?.hasPrefix("{% for message in messages %}") ?? false)
        XCTAssertGreaterThanOrEqual(try compare(tokenizer, { ($0.ids, $0.offsets) }, label: "SmolLM2 (GGUF)"), 1000)
        XCTAssertEqual(tokenizer.encodeIDs("<|im_start|>user\nhi<|im_end|>"), [1, 4093, 198, 6004, 2])
        XCTAssertEqual(try tokenizer.decode([1, 4093, 198, 6004, 2], skipSpecial: true), "user\nhi")
    }

    func testTokenizerJSONMatchesHuggingFaceOnEveryLine() throws {
        let tokenizer = try ByteLevelBPETokenizer.load(tokenizerJSON: Self.fixture("bpe_tiny_tokenizer.json"))
        XCTAssertEqual(tokenizer.addedTokens.map(\.content), ["<s>", "</s>", "<|sep|>"])
        XCTAssertGreaterThanOrEqual(try compare(tokenizer, { ($0.tiny_ids, $0.tiny_offsets) }, label: "tokenizer.json"), 1000)
    }

    /// The same small tokenizer as GGUF metadata (written by the `gguf` package): the GGUF constructor without the
    /// fetched model.
    func testTokenizerFromSmallGGUFMatchesHuggingFaceOnEveryLine() throws {
        let tokenizer = try ByteLevelBPETokenizer(gguf: try GGUFFile(contentsOf: Self.fixture("bpe_tiny_tokenizer.gguf")))
        XCTAssertEqual(tokenizer.addedTokens, [.init(content: "<s>", id: 0, special: true), .init(content: "</s>", id: 1, special: true),
                                               .init(content: "<|sep|>", id: 2, special: true)])
        XCTAssertEqual([tokenizer.bosTokenID, tokenizer.eosTokenID], [0, 1])
        XCTAssertEqual(tokenizer.chatTemplate, "{{ messages }}")
        XCTAssertGreaterThanOrEqual(try compare(tokenizer, { ($0.tiny_ids, $0.tiny_offsets) }, label: "tokenizer GGUF"), 1000)
    }

    /// A GGUF file whose tokenizer metadata is wrong is an error naming the file and the key.
    func testBadGGUFTokenizerMetadataIsAnErrorNamingTheKey() throws {
        let bytes = [UInt8](try Data(contentsOf: Self.fixture("bpe_tiny_tokenizer.gguf")))
        /// The fixture with the first occurrence of `from` replaced by `to` (as long) must fail with `expected`.
        func refused(_ from: String, _ to: String, _ expected: String) throws {
            let needle = Array(from.utf8), replacement = Array(to.utf8)
            precondition(needle.count == replacement.count)
            var copy = bytes
            if let i = (0...(copy.count - needle.count)).first(where: { Array(copy[$0..<($0 + needle.count)]) == needle }) {
                copy.replaceSubrange(i..<(i + needle.count), with: replacement)
            }
            XCTAssertNotEqual(copy, bytes, "\(from) not found")
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-bpe-\(UUID().uuidString).gguf")
            try Data(copy).write(to: url)
            defer { try? FileManager.default.removeItem(at: url) }
            XCTAssertThrowsError(try ByteLevelBPETokenizer(gguf: try GGUFFile(contentsOf: url))) { error in
                XCTAssertTrue("\(error)".contains(url.path) && "\(error)".contains(expected), "\(error) lacks \(expected)")
            }
        }
        try refused("gpt2", "gpt3", "tokenizer.ggml.model is \"gpt3\" (STRING); expected \"gpt2\"")
        try refused("Ġ t", "Ġ_t", "tokenizer.ggml.merges[0] is \"Ġ_t\"; expected two tokens separated by one space")
        try refused("tokenizer.ggml.tokens", "tokenizer.ggml.tokenz", "tokenizer.ggml.tokens is missing; expected an array of strings")
    }

    /// Long lines: encoding stays near linear (a 100 KB line of one letter is one piece of 100,000 bytes for BPE).
    func testLongLinesEncodeFast() throws {
        var tokenizers = [("tokenizer.json", try ByteLevelBPETokenizer.load(tokenizerJSON: Self.fixture("bpe_tiny_tokenizer.json")))]
        if FileManager.default.fileExists(atPath: Self.ggufURL.path) { tokenizers.append(("SmolLM2", try Self.smolLM2.get())) }
        let mixed = String(try Self.records.get().map(\.text).joined(separator: " ").unicodeScalars.prefix(100_000))
        for (name, tokenizer) in tokenizers {
            for (label, text) in [("one letter", String(repeating: "a", count: 100_000)), ("mixed corpus text", mixed),
                                  ("spaces", String(repeating: " ", count: 100_000))] {
                let start = Date()
                let tokens = tokenizer.encode(text)
                let seconds = Date().timeIntervalSince(start)
                print("\(name): 100 KB of \(label): \(tokens.count) tokens in \(String(format: "%.3f", seconds)) s")
                XCTAssertEqual(try tokenizer.decode(tokens.map(\.id)), text)
                XCTAssertLessThan(seconds, 1.0, "\(name): \(label)")
            }
        }
    }

    /// Bytes that are not whole UTF-8 characters decode to U+FFFD, as HF's lossy decoding does; `skipSpecial` drops
    /// added special tokens only.
    func testDecodeOfPartialCharactersAndSpecialTokens() throws {
        let tokenizer = try ByteLevelBPETokenizer.load(tokenizerJSON: Self.fixture("bpe_tiny_tokenizer.json"))
        let e6 = try XCTUnwrap(tokenizer.id(of: "æ"))  // the byte 0xE6, first of the three bytes of 日
        XCTAssertEqual(try tokenizer.decode([e6]), "\u{FFFD}")
        let ids = tokenizer.encodeIDs("<s>日本</s>")
        XCTAssertEqual(try tokenizer.decode(ids), "<s>日本</s>")
        XCTAssertEqual(try tokenizer.decode(ids, skipSpecial: true), "日本")
        XCTAssertEqual(try tokenizer.decode(Array(ids.dropLast(2))).last, "\u{FFFD}")
    }

    /// The heap-driven merge equals the rescanning twin on random pieces of a tiny vocabulary where many merges
    /// compete (equal pairs side by side, chains of merges).
    func testHeapMergeEqualsNaiveMerge() throws {
        let letters = ["a", "b", "c"]
        var tokens = letters, merges: [(String, String)] = []
        for (a, b) in [("a", "a"), ("a", "b"), ("aa", "a"), ("b", "c"), ("ab", "c"), ("c", "a"), ("aa", "aa"), ("aaa", "bc")] {
            if !tokens.contains(a + b) { tokens.append(a + b) }
            merges.append((a, b))
        }
        var table: [UInt64: (rank: Int32, id: Int32)] = [:]
        for (rank, (a, b)) in merges.enumerated() {
            let key = BPEWork.key(Int32(tokens.firstIndex(of: a)!), Int32(tokens.firstIndex(of: b)!))
            if table[key] == nil { table[key] = (Int32(rank), Int32(tokens.firstIndex(of: a + b)!)) }
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let n = Int.random(in: 0...40, using: &rng)
            var fast = BPEWork(), naive = BPEWork()
            for k in 0..<n {
                let id = Int32.random(in: 0..<3, using: &rng)
                fast.append(id: id, character: k)
                naive.append(id: id, character: k)
            }
            fast.merge(table)
            naive.mergeNaive(table)
            var a: [Token] = [], b: [Token] = []
            fast.emit(into: &a)
            naive.emit(into: &b)
            XCTAssertEqual(a, b)
        }
    }

    func testBadInputsAreErrorsNamingTheEntry() throws {
        func refused(_ expected: String, _ build: () throws -> ByteLevelBPETokenizer) {
            XCTAssertThrowsError(try build()) { XCTAssertTrue("\($0)".contains(expected), "\($0) lacks \(expected)") }
        }
        refused("t: token 2 \"a\" repeats token 0") { try .init(source: "t", tokens: ["a", "b", "a"], merges: [], addedTokens: []) }
        refused("t: merge 0 (\"a\" \"b\") needs the token \"ab\"") {
            try .init(source: "t", tokens: ["a", "b"], merges: [("a", "b")], addedTokens: [])
        }
        refused("t: added token \"<x>\" has id 1, but the vocabulary has \"b\" there") {
            try .init(source: "t", tokens: ["a", "b"], merges: [], addedTokens: [.init(content: "<x>", id: 1, special: true)])
        }
        refused("t: the EOS token id is 7, outside the vocabulary's 0…1") {
            try .init(source: "t", tokens: ["a", "b"], merges: [], addedTokens: [], eosTokenID: 7)
        }
        let tiny = try Data(contentsOf: Self.fixture("bpe_tiny_tokenizer.json"))
        let text = String(decoding: tiny, as: UTF8.self)
        for (from, to, expected) in [
            ("\"type\": \"BPE\"", "\"type\": \"WordPiece\"", "model.type is \"WordPiece\"; expected \"BPE\""),
            ("\"add_prefix_space\": false", "\"add_prefix_space\": true", "pre_tokenizer.add_prefix_space is true; expected false"),
            ("\"lstrip\": false", "\"lstrip\": true", "added_tokens[0] (\"<s>\") sets lstrip"),
            ("\"normalizer\": null", "\"normalizer\": {\"type\": \"NFC\"}", "normalizer is an object; expected null"),
        ] {
            XCTAssertTrue(text.contains(from), from)
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-bpe-\(UUID().uuidString).json")
            try text.replacingOccurrences(of: from, with: to).write(to: url, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: url) }
            refused(expected) { try ByteLevelBPETokenizer.load(tokenizerJSON: url) }
        }
        let tokenizer = try ByteLevelBPETokenizer.load(tokenizerJSON: Self.fixture("bpe_tiny_tokenizer.json"))
        XCTAssertThrowsError(try tokenizer.decode([100_000])) { XCTAssertTrue("\($0)".contains("cannot decode id 100000"), "\($0)") }
    }

    /// The split alone, on the regex's corner cases.
    func testGPT2SplitCornerCases() {
        func split(_ s: String) -> [String] {
            let scalars = s.unicodeScalars.map(\.value)
            var pieces: [Range<Int>] = []
            scalars.withUnsafeBufferPointer { GPT2Split.pieces($0, 0..<scalars.count, into: &pieces) }
            return pieces.map { String(String.UnicodeScalarView(scalars[$0].map { Unicode.Scalar($0)! })) }
        }
        XCTAssertEqual(split("Hello  world"), ["Hello", " ", " world"])
        XCTAssertEqual(split("it's  "), ["it", "'s", "  "])
        XCTAssertEqual(split("''s 'LL x'll"), ["''", "s", " '", "LL", " x", "'ll"])
        XCTAssertEqual(split("a\n\nb"), ["a", "\n", "\n", "b"])
        // Only U+0020 prefixes a word; U+3000 is \s, so it stands alone before a word.
        XCTAssertEqual(split("12 ab!? \u{3000}x"), ["12", " ab", "!?", " ", "\u{3000}", "x"])
    }
}

import Foundation
import Formats
import GGUF

extension ByteLevelBPETokenizer {
    /// The tokenizer a GGUF file carries: `tokenizer.ggml.model` "gpt2", `tokens`, `merges` ("left right", rank
    /// order), `token_type` (control and user-defined tokens are the added tokens; control ones are special),
    /// `bos_token_id`, `eos_token_id`, `unknown_token_id`, `padding_token_id`, `add_bos_token` and
    /// `tokenizer.chat_template`. The split is GPT-2's whatever `tokenizer.ggml.pre` says: transformers builds the
    /// same for every byte-level GGUF file, and this tokenizer's reference is transformers. (llama.cpp's `smollm`
    /// isolates digits first; on SmolLM2's vocabulary, which has no token of a digit with anything else, that
    /// changes only runs of spaces before a digit.)
    public init(gguf file: GGUFFile) throws {
        let path = file.url.path
        func fail(_ key: String, _ expected: String) -> FileFormatError {
            FileFormatError(path: path, key: key, message: "\(key) is \(file[key].map { "\($0.summary()) (\($0.type.name))" } ?? "missing"); expected \(expected)")
        }
        func strings(_ key: String) throws -> [String] {
            guard let values = file[key]?.array, case .array(.string, _)? = file[key] else { throw fail(key, "an array of strings") }
            return values.map { $0.string! }
        }
        func id(_ key: String) throws -> Int? {
            guard let value = file[key] else { return nil }
            guard let id = value.int else { throw fail(key, "an integer token id") }
            return id
        }
        guard file["tokenizer.ggml.model"]?.string == "gpt2" else {
            throw fail("tokenizer.ggml.model", "\"gpt2\" (a byte-level BPE tokenizer)")
        }
        let tokens = try strings("tokenizer.ggml.tokens")
        var merges: [(String, String)] = []
        merges.reserveCapacity(tokens.count)
        for (rank, merge) in try strings("tokenizer.ggml.merges").enumerated() {
            let parts = merge.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw FileFormatError(path: path, key: "tokenizer.ggml.merges",
                                      message: "tokenizer.ggml.merges[\(rank)] is \(quoted(merge)); expected two tokens separated by one space")
            }
            merges.append((String(parts[0]), String(parts[1])))
        }
        var added: [AddedToken] = []
        if let types = file["tokenizer.ggml.token_type"] {
            guard let values = types.array, values.count == tokens.count, values.allSatisfy({ $0.int != nil }) else {
                throw fail("tokenizer.ggml.token_type", "an array of \(tokens.count) integers (one per token)")
            }
            for (i, value) in values.enumerated() {
                guard let type = TokenType(rawValue: value.int!) else {
                    throw FileFormatError(path: path, key: "tokenizer.ggml.token_type",
                                          message: "tokenizer.ggml.token_type[\(i)] is \(value.int!); expected 1…6")
                }
                if type == .control || type == .userDefined {
                    added.append(AddedToken(content: tokens[i], id: i, special: type == .control))
                }
            }
        }
        guard file["tokenizer.ggml.add_bos_token"].map({ $0.bool != nil }) ?? true else {
            throw fail("tokenizer.ggml.add_bos_token", "a bool")
        }
        try self.init(source: path, tokens: tokens, merges: merges, addedTokens: added,
                      bosTokenID: try id("tokenizer.ggml.bos_token_id"), eosTokenID: try id("tokenizer.ggml.eos_token_id"),
                      unknownTokenID: try id("tokenizer.ggml.unknown_token_id"),
                      paddingTokenID: try id("tokenizer.ggml.padding_token_id"),
                      addsBOS: file["tokenizer.ggml.add_bos_token"]?.bool ?? false,
                      chatTemplate: file["tokenizer.chat_template"]?.string)
    }

    /// A Hugging Face `tokenizer.json` of the byte-level BPE kind: a BPE model (`vocab`, `merges` as "a b" strings
    /// or [a, b] pairs), no normaliser, the ByteLevel pre-tokenizer with the regex and no prefix space, no
    /// post-processor or one that adds nothing (a template of the sequences alone, or ByteLevel without offset
    /// trimming), and `added_tokens` without lstrip / rstrip / single_word. Anything else is an error naming the key
    /// and what this tokenizer reads, rather than a tokenizer that would differ from HF's.
    public static func load(tokenizerJSON url: URL) throws -> ByteLevelBPETokenizer {
        let file = try JSONFile(url)
        let root = try file.object(file.root, "")
        let model = try file.object(root["model"], "model")
        guard model["type"]?.string == "BPE" else { throw file.mismatch(model["type"], "model.type", "\"BPE\"") }
        for (key, allowed) in [("dropout", JSONValue.null), ("continuing_subword_prefix", .string("")),
                               ("end_of_word_suffix", .string("")), ("byte_fallback", .bool(false)),
                               ("ignore_merges", .bool(false))] {
            if let v = model[key], v != allowed, !(v.isNull && allowed == .string("")) {
                throw file.mismatch(v, "model.\(key)", "\(allowed.text) (a plain byte-level BPE)")
            }
        }
        let vocab = try file.object(model["vocab"], "model.vocab")
        var idToToken = [String?](repeating: nil, count: vocab.count)
        for (token, value) in vocab {
            let id = try file.int(value, "model.vocab[\(quoted(token))]")
            guard (0..<vocab.count).contains(id), idToToken[id] == nil else {
                throw file.mismatch(value, "model.vocab[\(quoted(token))]", "distinct ids 0…\(vocab.count - 1)")
            }
            idToToken[id] = token
        }
        guard let merged = model["merges"]?.array else { throw file.mismatch(model["merges"], "model.merges", "an array") }
        var merges: [(String, String)] = []
        merges.reserveCapacity(merged.count)
        for (i, m) in merged.enumerated() {
            if let pair = m.array, pair.count == 2, let a = pair[0].string, let b = pair[1].string {
                merges.append((a, b))
            } else if let s = m.string, case let parts = s.split(separator: " ", omittingEmptySubsequences: false), parts.count == 2 {
                merges.append((String(parts[0]), String(parts[1])))
            } else {
                throw file.mismatch(m, "model.merges[\(i)]", "\"left right\" or [left, right]")
            }
        }
        if let n = root["normalizer"], !n.isNull { throw file.mismatch(n, "normalizer", "null (no normaliser)") }
        let pre = try file.object(root["pre_tokenizer"], "pre_tokenizer")
        guard pre["type"]?.string == "ByteLevel" else {
            throw file.mismatch(pre["type"], "pre_tokenizer.type", "\"ByteLevel\"")
        }
        if let v = pre["add_prefix_space"], v.bool != false { throw file.mismatch(v, "pre_tokenizer.add_prefix_space", "false") }
        if let v = pre["use_regex"], v.bool != true { throw file.mismatch(v, "pre_tokenizer.use_regex", "true") }
        if let p = root["post_processor"], !p.isNull {
            let post = try file.object(p, "post_processor")
            switch post["type"]?.string {
            case "ByteLevel":
                if let v = post["trim_offsets"], v.bool != false {
                    throw file.mismatch(v, "post_processor.trim_offsets", "false (offsets are not trimmed here)")
                }
            case "TemplateProcessing":
                let single = post["single"]?.array ?? []
                guard single.count == 1, single[0].object?["Sequence"] != nil else {
                    throw file.mismatch(post["single"], "post_processor.single", "[{\"Sequence\": …}] (no added tokens)")
                }
            default:
                throw file.mismatch(post["type"], "post_processor.type", "null, \"ByteLevel\" or \"TemplateProcessing\"")
            }
        }
        var tokens = idToToken.map { $0 ?? "" }
        var added: [AddedToken] = []
        for t in try file.addedTokens(root) {
            if t.id == tokens.count { tokens.append(t.content) }  // outside the model vocabulary: the next id
            added.append(AddedToken(content: t.content, id: t.id, special: t.special))
        }
        if let hole = tokens.firstIndex(of: ""), !added.contains(where: { $0.id == hole }) {
            throw TokenizerError("\(url.path): model.vocab has no token with id \(hole); expected ids 0…\(tokens.count - 1)")
        }
        return try ByteLevelBPETokenizer(source: url.path, tokens: tokens, merges: merges, addedTokens: added)
    }
}

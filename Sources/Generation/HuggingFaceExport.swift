import Foundation
import Formats
import Tasks

extension LanguageModel {
    /// Writes a Hugging Face `LlamaForCausalLM` directory that transformers and `LanguageModel.open` both read:
    /// config.json and model.safetensors (float32, `LlamaModel.save`), tokenizer.json (`tokenizerJSON`),
    /// tokenizer_config.json (the special tokens and the chat template) and generation_config.json.
    public func saveHuggingFace(to dir: URL) throws {
        try model.save(to: dir)
        let t = tokenizer
        func name(_ id: Int?) -> String? { id.map { t.tokens[$0] } }
        let files: [(String, String)] = [
            ("tokenizer.json", Self.tokenizerJSON(t)),
            ("tokenizer_config.json", JSON.object([
                ("tokenizer_class", "PreTrainedTokenizerFast"), ("bos_token", name(t.bosTokenID)),
                ("eos_token", name(t.eosTokenID)), ("unk_token", name(t.unknownTokenID)),
                ("pad_token", name(t.paddingTokenID)), ("add_bos_token", t.addsBOS), ("add_prefix_space", false),
                ("clean_up_tokenization_spaces", false), ("model_max_length", config.maxPositionEmbeddings),
                ("chat_template", t.chatTemplate),
            ])),
            ("generation_config.json", JSON.object([
                ("bos_token_id", config.bosTokenId),
                ("eos_token_id", config.eosTokenIds.count == 1 ? config.eosTokenIds[0] as Any : config.eosTokenIds),
                ("pad_token_id", config.padTokenId),
            ])),
        ]
        for (file, text) in files {
            let url = dir.appendingPathComponent(file)
            do { try Data((text + "\n").utf8).write(to: url) } catch {
                throw FileFormatError(path: url.path, message: "cannot write the file: \(error.localizedDescription)")
            }
        }
    }

    /// A byte-level BPE `tokenizer.json` of `tokenizer`: the BPE model (vocab by id, merges as pairs in rank order),
    /// no normaliser, the ByteLevel pre-tokenizer with GPT-2's regex and no prefix space, a ByteLevel
    /// post-processor that trims nothing, the ByteLevel decoder, and the added tokens (none stripped).
    public static func tokenizerJSON(_ tokenizer: ByteLevelBPETokenizer) -> String {
        let byteLevel: [(String, Any?)] = [("type", "ByteLevel"), ("add_prefix_space", false), ("trim_offsets", false),
                                           ("use_regex", true)]
        let added = tokenizer.addedTokens.map { a -> [(String, Any?)] in
            [("id", a.id), ("content", a.content), ("single_word", false), ("lstrip", false), ("rstrip", false),
             ("normalized", false), ("special", a.special)]
        }
        // The vocabulary and merges are written directly: tens of thousands of entries, in id and rank order.
        let vocab = "{" + tokenizer.tokens.enumerated().map { "\(JSON.quote($0.element)):\($0.offset)" }
            .joined(separator: ",") + "}"
        let merges = "[" + tokenizer.mergeList.map { "[\(JSON.quote($0.0)),\(JSON.quote($0.1))]" }
            .joined(separator: ",") + "]"
        let model: [(String, Any?)] = [
            ("type", "BPE"), ("dropout", nil), ("unk_token", tokenizer.unknownTokenID.map { tokenizer.tokens[$0] }),
            ("continuing_subword_prefix", nil), ("end_of_word_suffix", nil), ("fuse_unk", false),
            ("byte_fallback", false), ("ignore_merges", false), ("vocab", JSON.Raw(vocab)), ("merges", JSON.Raw(merges)),
        ]
        return JSON.object([
            ("version", "1.0"), ("truncation", nil), ("padding", nil), ("added_tokens", added), ("normalizer", nil),
            ("pre_tokenizer", byteLevel), ("post_processor", byteLevel), ("decoder", byteLevel), ("model", model),
        ])
    }
}

import Foundation
import Formats
import GGUF
import Llama
import Tasks
import Tensor

/// An error of this target that is not about one file's format: printed as it is.
public struct GenerationError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A decoder language model with its tokenizer, opened from a GGUF file (llama.cpp's format, any type the GGUF
/// reader dequantises) or a Hugging Face `LlamaForCausalLM` directory (config.json, model.safetensors,
/// tokenizer.json, and optionally tokenizer_config.json for the chat template).
public struct LanguageModel {
    public let model: LlamaModel
    public let tokenizer: ByteLevelBPETokenizer
    /// The file or directory it came from.
    public let source: URL

    public var config: LlamaConfig { model.config }

    public init(model: LlamaModel, tokenizer: ByteLevelBPETokenizer, source: URL) {
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
    }

    /// Opens `url`: a directory is read as Hugging Face's layout, anything else as a GGUF file. Errors name the
    /// file and the key or tensor at fault.
    public static func open(_ url: URL) throws -> LanguageModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw GenerationError("\(url.path): no such file or directory (expected a .gguf file or a Hugging Face model directory)")
        }
        return isDirectory.boolValue ? try openDirectory(url) : try openGGUF(url)
    }

    /// The ids the model ends a text with: the config's `eos_token_id`s and the tokenizer's EOS.
    public var endOfSequenceIDs: Set<Int> {
        Set(config.eosTokenIds + (tokenizer.eosTokenID.map { [$0] } ?? []))
    }

    // MARK: GGUF

    /// A GGUF file of the `llama` architecture: the config from its `llama.*` keys (`configuration(gguf:)`), the
    /// tensors dequantised to float32, renamed and un-permuted (`LlamaKeys.fromGGUF`), the tokenizer from its
    /// `tokenizer.ggml.*` keys.
    public static func openGGUF(_ url: URL) throws -> LanguageModel {
        let file = try GGUFFile(contentsOf: url)
        let config = try configuration(gguf: file)
        var table: [String: Tensor] = [:]
        for info in file.tensors { table[info.name] = try file.tensor(info.name) }
        let model = try LlamaModel(config: config, tensors: LlamaKeys.fromGGUF(table, config: config), source: url.path)
        return LanguageModel(model: model, tokenizer: try ByteLevelBPETokenizer(gguf: file), source: url)
    }

    /// The `LlamaConfig` of a GGUF file: `general.architecture` must be "llama"; `llama.block_count`,
    /// `embedding_length`, `feed_forward_length`, `attention.head_count`, `attention.head_count_kv` (default: the
    /// head count), `attention.layer_norm_rms_epsilon`, `rope.freq_base` (default 10,000), `context_length`,
    /// `rope.dimension_count` (the head width; default width / heads); the vocabulary is the token list's length;
    /// tied when the file has no `output.weight`; BOS, EOS and padding ids from the tokenizer keys. A
    /// `llama.rope.scaling.type` other than "none" is refused.
    public static func configuration(gguf file: GGUFFile) throws -> LlamaConfig {
        let path = file.url.path
        let arch = file["general.architecture"]?.string
        guard arch == "llama" else {
            throw FileFormatError(path: path, key: "general.architecture",
                                  message: "general.architecture is \(arch.map { "'\($0)'" } ?? "missing"); only 'llama' models are supported")
        }
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            if let v = file["llama." + key] {
                guard let i = v.int else { throw FileFormatError(path: path, key: "llama." + key, message: "llama.\(key) is \(v.summary()); expected an integer") }
                return i
            }
            guard let value else { throw FileFormatError(path: path, key: "llama." + key, message: "missing required key llama.\(key)") }
            return value
        }
        func number(_ key: String, default value: Double?) throws -> Double {
            if let v = file["llama." + key] {
                guard let d = v.double else { throw FileFormatError(path: path, key: "llama." + key, message: "llama.\(key) is \(v.summary()); expected a number") }
                return d
            }
            guard let value else { throw FileFormatError(path: path, key: "llama." + key, message: "missing required key llama.\(key)") }
            return value
        }
        if let scaling = file["llama.rope.scaling.type"]?.string, scaling != "none" {
            throw FileFormatError(path: path, key: "llama.rope.scaling.type", message: "rope scaling '\(scaling)' is not supported")
        }
        guard let tokens = file["tokenizer.ggml.tokens"]?.array, !tokens.isEmpty else {
            throw FileFormatError(path: path, key: "tokenizer.ggml.tokens", message: "missing tokenizer.ggml.tokens (the vocabulary)")
        }
        let hidden = try int("embedding_length"), heads = try int("attention.head_count")
        let eos = file["tokenizer.ggml.eos_token_id"]?.int
        let config = LlamaConfig(
            vocabSize: tokens.count, hiddenSize: hidden, intermediateSize: try int("feed_forward_length"),
            numHiddenLayers: try int("block_count"), numAttentionHeads: heads,
            numKeyValueHeads: try int("attention.head_count_kv", default: heads),
            headDim: try int("attention.key_length", default: try int("rope.dimension_count", default: heads > 0 ? hidden / heads : 0)),
            rmsNormEps: try number("attention.layer_norm_rms_epsilon", default: nil),
            ropeTheta: try number("rope.freq_base", default: 10_000),
            maxPositionEmbeddings: try int("context_length", default: 2048),
            tieWordEmbeddings: !file.tensors.contains { $0.name == "output.weight" },
            bosTokenId: file["tokenizer.ggml.bos_token_id"]?.int, eosTokenIds: eos.map { [$0] } ?? [],
            padTokenId: file["tokenizer.ggml.padding_token_id"]?.int)
        try config.validate(file: path)
        return config
    }

    // MARK: Hugging Face directory

    /// A Hugging Face directory: the model (`LlamaModel.load(directory:)`) and tokenizer.json; the BOS and EOS ids
    /// from config.json, the chat template from tokenizer_config.json when present.
    public static func openDirectory(_ dir: URL) throws -> LanguageModel {
        for name in ["config.json", "model.safetensors", "tokenizer.json"] {
            let file = dir.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: file.path) else {
                throw GenerationError("\(dir.path): no \(name) (a Hugging Face model directory has config.json, model.safetensors and tokenizer.json)")
            }
        }
        let model = try LlamaModel.load(directory: dir)
        let plain = try ByteLevelBPETokenizer.load(tokenizerJSON: dir.appendingPathComponent("tokenizer.json"))
        var template: String?
        let tokenizerConfig = dir.appendingPathComponent("tokenizer_config.json")
        if let data = try? Data(contentsOf: tokenizerConfig) {
            guard let json = try? JSONDecoder().decode(JSONValue.self, from: data), let fields = json.object else {
                throw FileFormatError(path: tokenizerConfig.path, message: "not a JSON object")
            }
            template = fields["chat_template"]?.string
        }
        let c = model.config
        let tokenizer = try ByteLevelBPETokenizer(
            source: plain.source, tokens: plain.tokens, merges: plain.mergeList, addedTokens: plain.addedTokens,
            bosTokenID: c.bosTokenId, eosTokenID: c.eosTokenIds.first, paddingTokenID: c.padTokenId,
            chatTemplate: template)
        return LanguageModel(model: model, tokenizer: tokenizer, source: dir)
    }
}

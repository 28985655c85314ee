// LlamaConfig: the hyper-parameters of a LLaMA-family decoder, read from and written to a Hugging Face `config.json`.

import Foundation
import Formats

/// The hyper-parameters of a decoder LM, mirroring the `config.json` of Hugging Face's `LlamaForCausalLM` field
/// by field (Swift names are the camel-cased JSON names). Absent optional keys take transformers' defaults;
/// unknown keys (`_name_or_path`, `torch_dtype`, `use_cache`, …) are ignored. What cofi does not implement is
/// refused by name: a `hidden_act` other than "silu", `attention_bias` or `mlp_bias` true, any `rope_scaling`, a
/// `rope_parameters.rope_type` other than "default".
public struct LlamaConfig: Equatable, Sendable {
    /// Rows of the token-embedding table `[V, D]` (and of the output layer).
    public var vocabSize: Int
    /// Model width D.
    public var hiddenSize: Int
    /// FFN width I: gate and up are `[I, D]`, down is `[D, I]`.
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    /// Query heads Hq per layer.
    public var numAttentionHeads: Int
    /// Key/value heads Hkv; Hq is a multiple of it (grouped-query attention, G = Hq / Hkv query heads per KV head).
    public var numKeyValueHeads: Int
    /// Width of one head; transformers' default is D / Hq.
    public var headDim: Int
    public var rmsNormEps: Double
    /// Base θ of the rotary inverse frequencies θ^(−2i/Dh) (`rope_theta`, or `rope_parameters.rope_theta`).
    public var ropeTheta: Double
    /// The longest context the model was trained for; the KV cache holds at most this many positions.
    public var maxPositionEmbeddings: Int
    /// The output layer is the token-embedding table (no `lm_head.weight` in the checkpoint).
    public var tieWordEmbeddings: Bool
    public var bosTokenId: Int?
    /// End-of-sequence ids (`eos_token_id` may be one integer or a list).
    public var eosTokenIds: [Int]
    public var padTokenId: Int?

    public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
                numKeyValueHeads: Int? = nil, headDim: Int? = nil, rmsNormEps: Double = 1e-6, ropeTheta: Double = 10_000,
                maxPositionEmbeddings: Int = 2048, tieWordEmbeddings: Bool = false, bosTokenId: Int? = 1,
                eosTokenIds: [Int] = [2], padTokenId: Int? = nil) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads ?? numAttentionHeads
        self.headDim = headDim ?? hiddenSize / max(numAttentionHeads, 1)
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
        self.bosTokenId = bosTokenId
        self.eosTokenIds = eosTokenIds
        self.padTokenId = padTokenId
    }

    /// Query heads that share one KV head, G = Hq / Hkv.
    public var groupSize: Int { numAttentionHeads / numKeyValueHeads }

    /// The largest value each size may take: generous for LLaMA-family models (Llama-3-70B: 80 layers, width
    /// 8,192, FFN 28,672, vocabulary 128,256, context 131,072) and small enough that no parameter count made from
    /// them overflows an Int.
    public static let sizeLimits: [String: Int] = [
        "vocab_size": 10_000_000, "hidden_size": 65_536, "intermediate_size": 1_048_576, "num_hidden_layers": 1_000,
        "num_attention_heads": 4_096, "num_key_value_heads": 4_096, "head_dim": 4_096,
        "max_position_embeddings": 16_777_216,
    ]
}

// MARK: - Reading, validating, writing

extension LlamaConfig {
    /// Reads, decodes and validates the `config.json` at `url`; errors are `FileFormatError`s naming the file and
    /// the key.
    public static func load(from url: URL) throws -> LlamaConfig {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw FileFormatError(path: url.path, message: "cannot read the file: \(error.localizedDescription)")
        }
        guard let json = try? JSONDecoder().decode(JSONValue.self, from: data) else {
            throw FileFormatError(path: url.path, message: "not valid JSON")
        }
        return try LlamaConfig(json: json, file: url.path)
    }

    /// Decodes a parsed `config.json` and validates it (`validate(file:)`). `file` names the source in errors.
    public init(json: JSONValue, file: String = "config.json") throws {
        guard let fields = json.object else {
            throw FileFormatError(path: file, message: "expected a JSON object at the top level, found \(json.summary)")
        }
        let reader = FieldReader(fields: fields, file: file)
        let heads = try reader.int("num_attention_heads")
        let hidden = try reader.int("hidden_size")
        self.init(vocabSize: try reader.int("vocab_size"), hiddenSize: hidden,
                  intermediateSize: try reader.int("intermediate_size"),
                  numHiddenLayers: try reader.int("num_hidden_layers"), numAttentionHeads: heads,
                  numKeyValueHeads: try reader.optionalInt("num_key_value_heads"),
                  headDim: try reader.optionalInt("head_dim"),
                  rmsNormEps: try reader.optionalNumber("rms_norm_eps") ?? 1e-6,
                  ropeTheta: try Self.ropeTheta(reader),
                  maxPositionEmbeddings: try reader.optionalInt("max_position_embeddings") ?? 2048,
                  tieWordEmbeddings: try reader.optionalBool("tie_word_embeddings") ?? false,
                  bosTokenId: try reader.optionalInt("bos_token_id"),
                  eosTokenIds: try reader.intOrInts("eos_token_id"),
                  padTokenId: try reader.optionalInt("pad_token_id"))
        if let type = try reader.optionalString("model_type"), type != "llama" {
            throw FileFormatError(path: file, key: "model_type",
                                  message: "model_type '\(type)' is not supported (expected 'llama')")
        }
        if let act = try reader.optionalString("hidden_act"), act != "silu" {
            throw FileFormatError(path: file, key: "hidden_act", message: "hidden_act '\(act)' is not supported (expected 'silu')")
        }
        for key in ["attention_bias", "mlp_bias"] where try reader.optionalBool(key) == true {
            throw FileFormatError(path: file, key: key, message: "\(key) true is not supported (LLaMA projections have no bias)")
        }
        if let scaling = fields["rope_scaling"], !scaling.isNull {
            throw FileFormatError(path: file, key: "rope_scaling",
                                  message: "rope_scaling is not supported (found \(scaling.summary); expected null)")
        }
        try validate(file: file)
    }

    /// θ from `rope_theta`, else from transformers 5's `rope_parameters` (whose `rope_type` must be "default"),
    /// else 10,000.
    private static func ropeTheta(_ reader: FieldReader) throws -> Double {
        if let theta = try reader.optionalNumber("rope_theta") { return theta }
        guard let parameters = reader.fields["rope_parameters"], !parameters.isNull else { return 10_000 }
        guard let p = parameters.object else {
            throw FileFormatError(path: reader.file, key: "rope_parameters",
                                  message: "key 'rope_parameters': expected an object, found \(parameters.summary)")
        }
        let inner = FieldReader(fields: p, file: reader.file, prefix: "rope_parameters.")
        if let type = try inner.optionalString("rope_type"), type != "default" {
            throw FileFormatError(path: reader.file, key: "rope_parameters.rope_type",
                                  message: "rope_parameters.rope_type '\(type)' is not supported (expected 'default')")
        }
        return try inner.optionalNumber("rope_theta") ?? 10_000
    }

    /// Checks the values: sizes positive and within `sizeLimits`; Hkv divides Hq (grouped-query attention); the
    /// head width even (rotary pairs); `rms_norm_eps` in (0, 0.1]; `rope_theta` > 1; token ids inside the
    /// vocabulary.
    public func validate(file: String = "LlamaConfig") throws {
        let sizes: [(String, Int)] = [
            ("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
            ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
            ("num_key_value_heads", numKeyValueHeads), ("head_dim", headDim),
            ("max_position_embeddings", maxPositionEmbeddings),
        ]
        for (key, value) in sizes {
            guard value > 0 else { throw FileFormatError(path: file, key: key, message: "key '\(key)' = \(value) must be positive") }
            if let limit = Self.sizeLimits[key], value > limit {
                throw FileFormatError(path: file, key: key,
                                      message: "key '\(key)' = \(value) exceeds the limit of \(limit) (expected a LLaMA-family size)")
            }
        }
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw FileFormatError(path: file, key: "num_key_value_heads",
                                  message: "num_attention_heads = \(numAttentionHeads) is not a multiple of num_key_value_heads = \(numKeyValueHeads)")
        }
        guard headDim % 2 == 0 else {
            throw FileFormatError(path: file, key: "head_dim", message: "head_dim = \(headDim) must be even (rotary embeddings rotate pairs)")
        }
        guard rmsNormEps > 0, rmsNormEps <= 0.1 else {
            throw FileFormatError(path: file, key: "rms_norm_eps", message: "key 'rms_norm_eps' = \(rmsNormEps) must be in (0, 0.1]")
        }
        guard ropeTheta > 1, ropeTheta.isFinite else {
            throw FileFormatError(path: file, key: "rope_theta", message: "key 'rope_theta' = \(ropeTheta) must be a finite number above 1")
        }
        let ids: [(String, Int)] = [bosTokenId.map { ("bos_token_id", $0) }, padTokenId.map { ("pad_token_id", $0) }]
            .compactMap { $0 } + eosTokenIds.map { ("eos_token_id", $0) }
        for (key, id) in ids where id < 0 || id >= vocabSize {
            throw FileFormatError(path: file, key: key, message: "key '\(key)' = \(id) is outside the vocabulary 0..<\(vocabSize)")
        }
    }

    /// The config as `config.json` text, with transformers' key names (`architectures` LlamaForCausalLM).
    public var json: String {
        let eos: Any = eosTokenIds.count == 1 ? eosTokenIds[0] : eosTokenIds
        return JSON.object([
            ("architectures", ["LlamaForCausalLM"]), ("model_type", "llama"),
            ("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
            ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
            ("num_key_value_heads", numKeyValueHeads), ("head_dim", headDim), ("hidden_act", "silu"),
            ("rms_norm_eps", rmsNormEps), ("rope_theta", ropeTheta), ("rope_scaling", nil),
            ("max_position_embeddings", maxPositionEmbeddings), ("tie_word_embeddings", tieWordEmbeddings),
            ("attention_bias", false), ("mlp_bias", false), ("bos_token_id", bosTokenId), ("eos_token_id", eos),
            ("pad_token_id", padTokenId),
        ])
    }
}

/// Typed access to the keys of a JSON object, with errors that name the file and the key.
struct FieldReader {
    let fields: [String: JSONValue]
    let file: String
    var prefix = ""

    private func fail(_ key: String, _ expected: String, _ found: JSONValue) -> FileFormatError {
        FileFormatError(path: file, key: prefix + key, message: "key '\(prefix + key)': expected \(expected), found \(found.summary)")
    }

    /// The value, or nil when the key is absent or null.
    private func present(_ key: String) -> JSONValue? {
        guard let v = fields[key], !v.isNull else { return nil }
        return v
    }

    func int(_ key: String) throws -> Int {
        guard let v = try optionalInt(key) else {
            throw FileFormatError(path: file, key: prefix + key, message: "missing required key '\(prefix + key)' (an integer)")
        }
        return v
    }

    func optionalInt(_ key: String) throws -> Int? {
        guard let v = present(key) else { return nil }
        guard let i = v.integer else { throw fail(key, "an integer", v) }
        return i
    }

    func optionalNumber(_ key: String) throws -> Double? {
        guard let v = present(key) else { return nil }
        switch v {
        case .integer(let i): return Double(i)
        case .number(let d): return d
        default: throw fail(key, "a number", v)
        }
    }

    func optionalBool(_ key: String) throws -> Bool? {
        guard let v = present(key) else { return nil }
        guard let b = v.bool else { throw fail(key, "a boolean", v) }
        return b
    }

    func optionalString(_ key: String) throws -> String? {
        guard let v = present(key) else { return nil }
        guard let s = v.string else { throw fail(key, "a string", v) }
        return s
    }

    /// An integer or an array of integers (empty when absent).
    func intOrInts(_ key: String) throws -> [Int] {
        guard let v = present(key) else { return [] }
        if let i = v.integer { return [i] }
        guard let a = v.array else { throw fail(key, "an integer or an array of integers", v) }
        return try a.map { e in
            guard let i = e.integer else { throw fail(key, "an integer or an array of integers", v) }
            return i
        }
    }
}

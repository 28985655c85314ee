// BertConfig: the hyper-parameters of a BERT encoder, read from and written to a Hugging Face `config.json`.

import Foundation
import Formats

/// The hyper-parameters of a BERT encoder, mirroring Hugging Face `config.json` (`BertConfig` in transformers)
/// field by field. Swift names are the camel-cased JSON names; absent optional keys take the Hugging Face
/// defaults; unknown keys (`_name_or_path`, `transformers_version`, `use_cache`, …) are ignored.
///
/// `load(from:)` decodes *and* validates; decoding with a bare `JSONDecoder` does not validate.
public struct BertConfig: Codable, Equatable, Sendable {
    /// Rows of the word-embedding table `[V, D]`.
    public var vocabSize: Int
    /// Model width D.
    public var hiddenSize: Int
    /// Number of encoder layers L.
    public var numHiddenLayers: Int
    /// Attention heads H per layer; D = H · Dh.
    public var numAttentionHeads: Int
    /// Width of the feed-forward inner layer F (`[F, D]` and `[D, F]` weights).
    public var intermediateSize: Int
    /// Activation of the feed-forward layer; only "gelu" (the exact erf form) is supported.
    public var hiddenAct: String
    public var hiddenDropoutProb: Double
    public var attentionProbsDropoutProb: Double
    /// Rows of the position-embedding table `[P, D]`: the longest sequence the model accepts.
    public var maxPositionEmbeddings: Int
    /// Rows of the token-type (segment) embedding table `[S, D]`.
    public var typeVocabSize: Int
    /// Standard deviation of the normal initialisation of weights.
    public var initializerRange: Double
    public var layerNormEps: Double
    public var padTokenId: Int
    /// Only "absolute" (learned position embeddings) is supported.
    public var positionEmbeddingType: String
    /// Dropout before a classification head; nil means `hiddenDropoutProb`.
    public var classifierDropout: Double?
    /// Label names by class index, with the index as a string key ("0", "1", …) as in the JSON.
    public var id2label: [String: String]?
    public var label2id: [String: Int]?
    /// Classes of a classification head: `num_labels`, else the size of `id2label`, else 2.
    public var numLabels: Int
    /// "single_label_classification", "multi_label_classification" or "regression", when set.
    public var problemType: String?
    /// "bert" when present.
    public var modelType: String?
    public var architectures: [String]?
    /// The `cofi` block of a compact (pruned) model: what it kept of the dense model the other fields describe.
    /// Nil for a dense model. `BertModel.load` checks it against the tensors.
    public var compact: CompactLayout?

    /// Width of one attention head, Dh = D / H.
    public var headDim: Int { hiddenSize / numAttentionHeads }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case intermediateSize = "intermediate_size"
        case hiddenAct = "hidden_act"
        case hiddenDropoutProb = "hidden_dropout_prob"
        case attentionProbsDropoutProb = "attention_probs_dropout_prob"
        case maxPositionEmbeddings = "max_position_embeddings"
        case typeVocabSize = "type_vocab_size"
        case initializerRange = "initializer_range"
        case layerNormEps = "layer_norm_eps"
        case padTokenId = "pad_token_id"
        case positionEmbeddingType = "position_embedding_type"
        case classifierDropout = "classifier_dropout"
        case id2label
        case label2id
        case numLabels = "num_labels"
        case problemType = "problem_type"
        case modelType = "model_type"
        case architectures
        case compact = "cofi"

        /// What the JSON value must be, for messages.
        var expected: String {
            switch self {
            case .vocabSize, .hiddenSize, .numHiddenLayers, .numAttentionHeads, .intermediateSize,
                 .maxPositionEmbeddings, .typeVocabSize, .padTokenId, .numLabels:
                return "an integer"
            case .hiddenDropoutProb, .attentionProbsDropoutProb, .initializerRange, .layerNormEps, .classifierDropout:
                return "a number"
            case .hiddenAct, .positionEmbeddingType, .problemType, .modelType:
                return "a string"
            case .id2label: return "an object of strings"
            case .label2id: return "an object of integers"
            case .architectures: return "an array of strings"
            case .compact: return "an object (the compact layout of a pruned model)"
            }
        }
    }

    /// A configuration with the Hugging Face defaults for everything but the five sizes.
    /// `numLabels` nil means `id2label?.count ?? 2`.
    public init(vocabSize: Int,
                hiddenSize: Int,
                numHiddenLayers: Int,
                numAttentionHeads: Int,
                intermediateSize: Int,
                hiddenAct: String = "gelu",
                hiddenDropoutProb: Double = 0.1,
                attentionProbsDropoutProb: Double = 0.1,
                maxPositionEmbeddings: Int = 512,
                typeVocabSize: Int = 2,
                initializerRange: Double = 0.02,
                layerNormEps: Double = 1e-12,
                padTokenId: Int = 0,
                positionEmbeddingType: String = "absolute",
                classifierDropout: Double? = nil,
                id2label: [String: String]? = nil,
                label2id: [String: Int]? = nil,
                numLabels: Int? = nil,
                problemType: String? = nil,
                modelType: String? = nil,
                architectures: [String]? = nil,
                compact: CompactLayout? = nil) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.intermediateSize = intermediateSize
        self.hiddenAct = hiddenAct
        self.hiddenDropoutProb = hiddenDropoutProb
        self.attentionProbsDropoutProb = attentionProbsDropoutProb
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.typeVocabSize = typeVocabSize
        self.initializerRange = initializerRange
        self.layerNormEps = layerNormEps
        self.padTokenId = padTokenId
        self.positionEmbeddingType = positionEmbeddingType
        self.classifierDropout = classifierDropout
        self.id2label = id2label
        self.label2id = label2id
        self.numLabels = numLabels ?? id2label?.count ?? 2
        self.problemType = problemType
        self.modelType = modelType
        self.architectures = architectures
        self.compact = compact
    }

    /// Decodes the JSON keys; absent (or null) optional keys take their defaults. Does not validate.
    /// `position_embedding_type`: absent means "absolute" (transformers' default); an explicit null is refused, since
    /// transformers then adds no position embeddings at all.
    private static func positionEmbeddingType(_ c: KeyedDecodingContainer<CodingKeys>) throws -> String {
        if c.contains(.positionEmbeddingType), try c.decodeNil(forKey: .positionEmbeddingType) {
            throw DecodingError.valueNotFound(String.self, DecodingError.Context(
                codingPath: c.codingPath + [CodingKeys.positionEmbeddingType],
                debugDescription: "null (transformers then adds no position embeddings); expected \"absolute\""))
        }
        return try c.decodeIfPresent(String.self, forKey: .positionEmbeddingType) ?? "absolute"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let id2label = try c.decodeIfPresent([String: String].self, forKey: .id2label)
        self.init(
            vocabSize: try c.decode(Int.self, forKey: .vocabSize),
            hiddenSize: try c.decode(Int.self, forKey: .hiddenSize),
            numHiddenLayers: try c.decode(Int.self, forKey: .numHiddenLayers),
            numAttentionHeads: try c.decode(Int.self, forKey: .numAttentionHeads),
            intermediateSize: try c.decode(Int.self, forKey: .intermediateSize),
            hiddenAct: try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "gelu",
            hiddenDropoutProb: try c.decodeIfPresent(Double.self, forKey: .hiddenDropoutProb) ?? 0.1,
            attentionProbsDropoutProb: try c.decodeIfPresent(Double.self, forKey: .attentionProbsDropoutProb) ?? 0.1,
            maxPositionEmbeddings: try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 512,
            typeVocabSize: try c.decodeIfPresent(Int.self, forKey: .typeVocabSize) ?? 2,
            initializerRange: try c.decodeIfPresent(Double.self, forKey: .initializerRange) ?? 0.02,
            layerNormEps: try c.decodeIfPresent(Double.self, forKey: .layerNormEps) ?? 1e-12,
            padTokenId: try c.decodeIfPresent(Int.self, forKey: .padTokenId) ?? 0,
            positionEmbeddingType: try Self.positionEmbeddingType(c),
            classifierDropout: try c.decodeIfPresent(Double.self, forKey: .classifierDropout),
            id2label: id2label,
            label2id: try c.decodeIfPresent([String: Int].self, forKey: .label2id),
            numLabels: try c.decodeIfPresent(Int.self, forKey: .numLabels),
            problemType: try c.decodeIfPresent(String.self, forKey: .problemType),
            modelType: try c.decodeIfPresent(String.self, forKey: .modelType),
            architectures: try c.decodeIfPresent([String].self, forKey: .architectures),
            compact: try c.decodeIfPresent(CompactLayout.self, forKey: .compact))
    }

    /// Encodes every field under its Hugging Face key; nil optionals are left out.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(hiddenAct, forKey: .hiddenAct)
        try c.encode(hiddenDropoutProb, forKey: .hiddenDropoutProb)
        try c.encode(attentionProbsDropoutProb, forKey: .attentionProbsDropoutProb)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(typeVocabSize, forKey: .typeVocabSize)
        try c.encode(initializerRange, forKey: .initializerRange)
        try c.encode(layerNormEps, forKey: .layerNormEps)
        try c.encode(padTokenId, forKey: .padTokenId)
        try c.encode(positionEmbeddingType, forKey: .positionEmbeddingType)
        try c.encodeIfPresent(classifierDropout, forKey: .classifierDropout)
        try c.encodeIfPresent(id2label, forKey: .id2label)
        try c.encodeIfPresent(label2id, forKey: .label2id)
        try c.encode(numLabels, forKey: .numLabels)
        try c.encodeIfPresent(problemType, forKey: .problemType)
        try c.encodeIfPresent(modelType, forKey: .modelType)
        try c.encodeIfPresent(architectures, forKey: .architectures)
        try c.encodeIfPresent(compact, forKey: .compact)
    }
}

// MARK: - Loading, validation, writing

extension BertConfig {
    /// Reads, decodes and validates the `config.json` at `url`. Throws `FileFormatError` naming the file, the
    /// key and what was expected: unreadable file, invalid JSON, a missing required key, a value of the wrong
    /// type, or a value `validate(file:)` rejects; a `cofi` block that does not decode throws `CompactFormatError`
    /// naming its field (`cofi.layers[2].kept_heads`). The block's values are checked by `BertModel.load`, against
    /// the tensors.
    public static func load(from url: URL) throws -> BertConfig {
        let path = url.path
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw FileFormatError(path: path, message: "cannot read the file: \(error.localizedDescription)")
        }
        let config: BertConfig
        do {
            config = try JSONDecoder().decode(BertConfig.self, from: data)
        } catch let error as DecodingError {
            if Self.codingPath(of: error).first?.stringValue == CodingKeys.compact.rawValue {
                throw CompactLayout.formatError(error, path: path)
            }
            let (key, message) = describe(error, data: data)
            throw FileFormatError(path: path, key: key, message: message)
        }
        try config.validate(file: path)
        return config
    }

    /// The largest value each size may take (`sizeLimits`). Generous for BERT-family models (BERT-large has 24
    /// layers, width 1,024, FFN 4,096, 30,522 tokens), and small enough that no parameter or size count made from
    /// them can overflow an Int: the largest, the embedding table, is below 2^40 elements.
    public static let sizeLimits: [String: Int] = [
        "vocab_size": 10_000_000, "hidden_size": 65_536, "num_hidden_layers": 1_000, "num_attention_heads": 65_536,
        "intermediate_size": 1_048_576, "max_position_embeddings": 1_048_576, "type_vocab_size": 65_536,
        "num_labels": 1_000_000,
    ]

    /// Checks the values: `model_type` (if present) is "bert"; sizes are positive and within `sizeLimits`;
    /// `hidden_size` divides into `num_attention_heads` heads; `hidden_act` is "gelu"; `position_embedding_type` is
    /// "absolute"; dropout probabilities lie in [0, 1); `layer_norm_eps` is positive; `pad_token_id` is a vocabulary
    /// index; the label maps are one-to-one: `id2label` (if present) has exactly the keys "0" … "num_labels − 1" and
    /// no name twice, `label2id` (if present) maps distinct names to distinct class indices, and the two (when both
    /// are present) are each other's inverse. `file` names the source in the error. The `cofi` block is checked
    /// against the tensors by `BertModel.load`, not here.
    public func validate(file: String = "BertConfig") throws {
        func fail(_ key: CodingKeys, _ message: String) -> FileFormatError {
            FileFormatError(path: file, key: key.rawValue, message: message)
        }
        if let modelType, modelType != "bert" {
            throw fail(.modelType, "model_type '\(modelType)' is not supported: only BERT-family 'bert' configs are supported")
        }
        let sizes: [(CodingKeys, Int)] = [
            (.vocabSize, vocabSize), (.hiddenSize, hiddenSize), (.numHiddenLayers, numHiddenLayers),
            (.numAttentionHeads, numAttentionHeads), (.intermediateSize, intermediateSize),
            (.maxPositionEmbeddings, maxPositionEmbeddings), (.typeVocabSize, typeVocabSize), (.numLabels, numLabels),
        ]
        for (key, value) in sizes where value <= 0 {
            throw fail(key, "key '\(key.rawValue)' = \(value) must be positive")
        }
        for (key, value) in sizes {
            if let limit = Self.sizeLimits[key.rawValue], value > limit {
                throw fail(key, "key '\(key.rawValue)' = \(value) exceeds the limit of \(limit) (expected a BERT-family size)")
            }
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw fail(.hiddenSize, "key 'hidden_size' = \(hiddenSize) is not divisible by num_attention_heads = \(numAttentionHeads)")
        }
        guard hiddenAct == "gelu" else {
            throw fail(.hiddenAct, "hidden_act '\(hiddenAct)' is not supported (expected 'gelu')")
        }
        guard positionEmbeddingType == "absolute" else {
            throw fail(.positionEmbeddingType,
                       "position_embedding_type '\(positionEmbeddingType)' is not supported (expected 'absolute')")
        }
        var probabilities: [(CodingKeys, Double)] = [
            (.hiddenDropoutProb, hiddenDropoutProb), (.attentionProbsDropoutProb, attentionProbsDropoutProb),
        ]
        if let classifierDropout { probabilities.append((.classifierDropout, classifierDropout)) }
        for (key, p) in probabilities where !(p >= 0 && p < 1) {
            throw fail(key, "key '\(key.rawValue)' = \(p) is outside [0, 1)")
        }
        // LayerNorm's ε only guards a division: BERT-family models use 1e-12 … 1e-5; one near the variance of the
        // activations would change what the model computes.
        guard layerNormEps > 0, layerNormEps <= 0.1 else {
            throw fail(.layerNormEps, "key 'layer_norm_eps' = \(layerNormEps) must be a positive number of at most 0.1")
        }
        guard initializerRange >= 0, initializerRange.isFinite else {
            throw fail(.initializerRange, "key 'initializer_range' = \(initializerRange) must be a non-negative number")
        }
        guard (0..<vocabSize).contains(padTokenId) else {
            throw fail(.padTokenId, "key 'pad_token_id' = \(padTokenId) is outside [0, vocab_size = \(vocabSize))")
        }
        if let id2label {
            guard id2label.count == numLabels else {
                throw fail(.numLabels, "key 'num_labels' = \(numLabels) disagrees with id2label, which has \(id2label.count) entries")
            }
            guard Set(id2label.keys) == Set((0..<numLabels).map(String.init)) else {
                let keys = id2label.keys.sorted().map { "'\($0)'" }.joined(separator: ", ")
                throw fail(.id2label, "key 'id2label' has keys \(keys), expected the class indices '0' … '\(numLabels - 1)'")
            }
            var classOf: [String: Int] = [:]
            for i in 0..<numLabels {
                let name = id2label[String(i)]!
                if let first = classOf[name] {
                    throw fail(.id2label, "key 'id2label' names classes \(first) and \(i) both '\(name)', expected one name per class")
                }
                classOf[name] = i
            }
        }
        if let label2id {
            var nameOf: [Int: String] = [:]
            for (name, id) in label2id.sorted(by: { ($0.value, $0.key) < ($1.value, $1.key) }) {
                guard (0..<numLabels).contains(id) else {
                    throw fail(.label2id, "key 'label2id': '\(name)' maps to \(id), outside the class indices 0 … \(numLabels - 1)")
                }
                if let other = nameOf[id] {
                    throw fail(.label2id, "key 'label2id' maps both '\(other)' and '\(name)' to class \(id), expected one name per class")
                }
                nameOf[id] = name
            }
            if let id2label {
                for i in 0..<numLabels where label2id[id2label[String(i)]!] != i {
                    let name = id2label[String(i)]!
                    throw fail(.label2id, "key 'label2id' maps '\(name)' to \(label2id[name].map(String.init) ?? "nothing"), "
                        + "but id2label names class \(i) '\(name)'; expected the inverse of id2label")
                }
            }
        }
    }

    /// Writes the configuration to `url` as pretty-printed JSON with the Hugging Face key names (sorted, as
    /// `save_pretrained` does), after validating it. Atomic: Foundation writes a temporary file in the same
    /// directory and renames it over `url`, so a reader never sees half a file. A config with a `cofi` block is
    /// written through `JSONValue.prettyText` (2-space indent, index arrays on one line).
    public func write(to url: URL) throws {
        try validate(file: url.path)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            var data = try encoder.encode(self)
            if compact != nil {
                data = Data(try JSONDecoder().decode(JSONValue.self, from: data).prettyText.utf8)
            }
            data.append(UInt8(ascii: "\n"))
            try data.write(to: url, options: .atomic)
        } catch {
            throw FileFormatError(path: url.path, message: "cannot write the file: \(error.localizedDescription)")
        }
    }

    /// The coding path at which `error` arose (for `keyNotFound`, down to the missing key).
    private static func codingPath(of error: DecodingError) -> [CodingKey] {
        switch error {
        case .keyNotFound(let key, let context): return context.codingPath + [key]
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return context.codingPath
        @unknown default: return []
        }
    }

    /// A `DecodingError` as the key at fault and a message naming it and what was expected vs found.
    private static func describe(_ error: DecodingError, data: Data) -> (key: String?, message: String) {
        func dotted(_ path: [CodingKey]) -> String { path.map(\.stringValue).joined(separator: ".") }
        func expected(_ path: [CodingKey], _ type: Any.Type) -> String {
            if path.count == 1, let key = CodingKeys(stringValue: path[0].stringValue) { return key.expected }
            return JSONValue.describe(type)
        }
        func found(_ path: [CodingKey]) -> String {
            guard let root = try? JSONDecoder().decode(JSONValue.self, from: data), let node = root.at(path: path) else {
                return "a value of another type"
            }
            return node.summary
        }

        switch error {
        case .keyNotFound(let key, let context):
            let path = context.codingPath + [key]
            let name = dotted(path)
            if path.count == 1, let k = CodingKeys(stringValue: key.stringValue) {
                return (name, "missing required key '\(name)' (\(k.expected))")
            }
            return (name, "missing required key '\(name)'")
        case .typeMismatch(let type, let context):
            let path = context.codingPath
            if path.isEmpty { return (nil, "expected a JSON object at the top level, found \(found(path))") }
            return (dotted(path), "key '\(dotted(path))': expected \(expected(path, type)), found \(found(path))")
        case .valueNotFound(let type, let context):
            let path = context.codingPath
            if path.isEmpty { return (nil, "expected a JSON object at the top level, found null") }
            return (dotted(path), "key '\(dotted(path))': expected \(expected(path, type)), found null")
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                if let (key, message) = nonIntegerNumber(data) { return (key, message) }
                return (nil, "not valid JSON: \(jsonSyntaxError(data))")
            }
            let path = context.codingPath
            return (dotted(path), "key '\(dotted(path))': \(context.debugDescription) (expected \(expected(path, Any.self)))")
        @unknown default:
            return (nil, "cannot decode: \(error)")
        }
    }

    /// The first integer-valued key holding a fractional or out-of-range number, for which JSONDecoder throws
    /// a bare "not valid JSON" with no coding path. Nil if there is none (the JSON is then really invalid).
    private static func nonIntegerNumber(_ data: Data) -> (key: String, message: String)? {
        guard let root = try? JSONDecoder().decode(JSONValue.self, from: data), case .object(let members) = root else {
            return nil
        }
        for key in CodingKeys.allCases {
            guard let node = members[key.rawValue] else { continue }
            if key.expected == "an integer", case .number = node {
                return (key.rawValue, "key '\(key.rawValue)': expected an integer, found \(node.summary)")
            }
            if key == .label2id, case .object(let labels) = node {
                for (label, value) in labels.sorted(by: { $0.key < $1.key }) {
                    if case .number = value {
                        return ("label2id.\(label)", "key 'label2id.\(label)': expected an integer, found \(value.summary)")
                    }
                }
            }
        }
        return nil
    }

    /// Where and why `data` fails to parse. JSONDecoder says only "not valid JSON"; JSONSerialization says
    /// "… around character N", to which the line number is added.
    private static func jsonSyntaxError(_ data: Data) -> String {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            return "the data is not valid JSON"
        } catch {
            guard let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String else {
                return error.localizedDescription
            }
            guard let range = detail.range(of: #"character \d+"#, options: .regularExpression),
                  let offset = Int(detail[range].dropFirst("character ".count)) else {
                return detail
            }
            let line = data.prefix(offset).reduce(1) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
            let sentence = detail.hasSuffix(".") ? String(detail.dropLast()) : detail
            return "\(sentence) (line \(line))"
        }
    }
}

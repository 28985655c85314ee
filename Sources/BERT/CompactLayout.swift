import Foundation
import Formats
import Tensor

/// The compact format: a model cut by CoFi keeps `config.json`'s standard Hugging Face BERT fields at their dense
/// values (as CoFi's released checkpoints keep them, so HF tooling reads the file) and adds a `cofi` object, the
/// `CompactLayout`: what was kept, in the original numbering. `BertConfig` reads and writes it as its `compact`
/// field; `BertModel.load` checks it against the tensors, and it is what allows a layer's tensors to be absent or
/// narrower than the dense config says (CoFi writes the format; the loader reads it).
///
///     "cofi": {
///       "encoder_parameters": 3211, "format_version": 1, "head_dim": 6, "hidden_size": 18,
///       "kept_hidden_indices": [0, 1, 2, 3, 4, 5, 8, 10, …, 23],
///       "layers": [
///         {"ffn_width": 16, "kept_ffn_units": [1, 2, 3, 5, …, 19], "kept_heads": [0, 3], "num_heads": 2},
///         {"ffn_width": 0, "kept_ffn_units": [], "kept_heads": [], "num_heads": 0},   (nothing left)
///         …],
///       "original_hidden_size": 24, "original_intermediate_size": 20, "original_num_attention_heads": 4,
///       "original_prunable_parameters": 13616, "prunable_parameters": 3031, "sparsity": 0.7773942420681551,
///       "source": {"expected_sparsity": 0.48, "note": "…", "source_model": "…", "target_sparsity": 0.5}
///     }

/// What a compact model kept of the original dense model, stored as the `cofi` object of its `config.json`.
/// Indices are in the original numbering and strictly increasing.
public struct CompactLayout: Codable, Equatable, Sendable {
    /// The version this code writes and reads.
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    /// The dense model's hidden width D, heads per layer H and FFN width I (`hidden_size`,
    /// `num_attention_heads`, `intermediate_size` of the same config.json).
    public var originalHiddenSize: Int
    public var originalNumAttentionHeads: Int
    public var originalIntermediateSize: Int
    /// Width of one head, unchanged by compaction.
    public var headDim: Int
    /// Kept hidden width D' (the width of every tensor's hidden axis) and the kept dims.
    public var hiddenSize: Int
    public var keptHidden: [Int]
    /// One entry per encoder layer.
    public var layers: [CompactLayerLayout]
    /// Encoder-layer parameters of the compact model, LayerNorms included (`BertShape.encoderParameters`).
    public var encoderParameters: Int
    /// Prunable parameters (cofi-spec §3) of the compact model and of the dense original, and the exact
    /// sparsity 1 − prunable / original_prunable.
    public var prunableParameters: Int
    public var originalPrunableParameters: Int
    public var sparsity: Double
    /// Where the model came from, as the caller described it.
    public var source: CompactSource?

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version"
        case originalHiddenSize = "original_hidden_size"
        case originalNumAttentionHeads = "original_num_attention_heads"
        case originalIntermediateSize = "original_intermediate_size"
        case headDim = "head_dim"
        case hiddenSize = "hidden_size"
        case keptHidden = "kept_hidden_indices"
        case layers
        case encoderParameters = "encoder_parameters"
        case prunableParameters = "prunable_parameters"
        case originalPrunableParameters = "original_prunable_parameters"
        case sparsity
        case source
    }

    /// The layout of a model of `shape` cut from the dense model that `config` describes, with the kept
    /// indices given; counts and sizes are derived.
    public init(config: BertConfig, shape: BertShape, keptHidden: [Int], keptHeads: [[Int]], keptFFNUnits: [[Int]],
                source: CompactSource? = nil) {
        precondition(keptHeads.count == shape.layers.count && keptFFNUnits.count == shape.layers.count,
                     "one entry per layer")
        formatVersion = Self.currentFormatVersion
        originalHiddenSize = config.hiddenSize
        originalNumAttentionHeads = config.numAttentionHeads
        originalIntermediateSize = config.intermediateSize
        headDim = shape.headDim
        hiddenSize = keptHidden.count
        self.keptHidden = keptHidden
        layers = zip(keptHeads, keptFFNUnits).map {
            CompactLayerLayout(numHeads: $0.count, keptHeads: $0, ffnWidth: $1.count, keptFFNUnits: $1)
        }
        encoderParameters = shape.encoderParameters
        prunableParameters = shape.prunableParameters
        originalPrunableParameters = BertShape(config: config).prunableParameters
        sparsity = originalPrunableParameters == 0 ? 0 : 1 - Double(prunableParameters) / Double(originalPrunableParameters)
        self.source = source
    }
}

extension CompactLayout {
    /// The layout of a model of `shape` that keeps the first heads, FFN units and hidden dims of the dense model
    /// `config` describes (its own numbering taken as the original one, as `compacted` does without a base): how
    /// a heterogeneous model built in memory (`randomlyInitialized(shape:)`, `assemble`) describes itself. Nil when
    /// the shape is the dense one, or when it cannot be cut from `config` (a different layer count or head width,
    /// or a dimension wider than the config's).
    public init?(describing shape: BertShape, config: BertConfig) {
        guard shape.layers.count == config.numHiddenLayers, shape.headDim == config.headDim,
              shape.hiddenSize <= config.hiddenSize,
              shape.layers.allSatisfy({ (0...config.numAttentionHeads).contains($0.heads)
                  && (0...config.intermediateSize).contains($0.ffnWidth) }) else { return nil }
        let dense = shape.hiddenSize == config.hiddenSize
            && shape.layers.allSatisfy { $0.heads == config.numAttentionHeads && $0.ffnWidth == config.intermediateSize }
        guard !dense else { return nil }
        self.init(config: config, shape: shape, keptHidden: Array(0..<shape.hiddenSize),
                  keptHeads: shape.layers.map { Array(0..<$0.heads) }, keptFFNUnits: shape.layers.map { Array(0..<$0.ffnWidth) })
    }

    /// The shape of the tensors this layout describes, for a model of the dense `config`: its kept hidden width and
    /// per-layer heads and FFN widths; vocabulary, positions and token types as `config` says; the pooler keeps the
    /// dense width (compaction cuts only its input).
    public func shape(config: BertConfig) -> BertShape {
        BertShape(vocabSize: config.vocabSize, hiddenSize: hiddenSize, headDim: headDim,
                  maxPositions: config.maxPositionEmbeddings, typeVocabSize: config.typeVocabSize,
                  layers: layers.map { LayerShape(heads: $0.numHeads, ffnWidth: $0.ffnWidth) },
                  poolerWidth: config.hiddenSize)
    }
}

extension BertShape {
    /// The shape of the model that a model directory's `config` describes, without reading its tensors: the `cofi`
    /// block's for a compact model, else the dense shape. The original (dense) shape is always
    /// `BertShape(config:)`, since a compact config keeps the dense sizes in its standard fields.
    public init(describedBy config: BertConfig) {
        self = config.compact?.shape(config: config) ?? BertShape(config: config)
    }
}

/// One layer of a `CompactLayout`.
public struct CompactLayerLayout: Codable, Equatable, Sendable {
    /// Heads kept (0: no attention sublayer) and their original indices.
    public var numHeads: Int
    public var keptHeads: [Int]
    /// FFN units kept (0: no FFN sublayer) and their original indices.
    public var ffnWidth: Int
    public var keptFFNUnits: [Int]

    public init(numHeads: Int, keptHeads: [Int], ffnWidth: Int, keptFFNUnits: [Int]) {
        self.numHeads = numHeads
        self.keptHeads = keptHeads
        self.ffnWidth = ffnWidth
        self.keptFFNUnits = keptFFNUnits
    }

    enum CodingKeys: String, CodingKey {
        case numHeads = "num_heads"
        case keptHeads = "kept_heads"
        case ffnWidth = "ffn_width"
        case keptFFNUnits = "kept_ffn_units"
    }
}

/// Provenance of a compact model; every field is optional and recorded as given.
public struct CompactSource: Codable, Equatable, Sendable {
    /// The model the masks were learned on (a directory or a name).
    public var sourceModel: String?
    public var targetSparsity: Double?
    /// The expected sparsity ŝ of the log α the deterministic masks came from.
    public var expectedSparsity: Double?
    /// Anything else worth keeping (the command, the step, …).
    public var note: String?

    public init(sourceModel: String? = nil, targetSparsity: Double? = nil, expectedSparsity: Double? = nil,
                note: String? = nil) {
        self.sourceModel = sourceModel
        self.targetSparsity = targetSparsity
        self.expectedSparsity = expectedSparsity
        self.note = note
    }

    enum CodingKeys: String, CodingKey {
        case sourceModel = "source_model"
        case targetSparsity = "target_sparsity"
        case expectedSparsity = "expected_sparsity"
        case note
    }
}

/// A `cofi` block that is malformed or disagrees with the tensors. `description` reads
/// "<file>: <field>: <message>", the field dotted from the top of config.json (`cofi.layers[2].kept_heads`).
public struct CompactFormatError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let field: String
    public let message: String

    public init(path: String, field: String, message: String) {
        self.path = path
        self.field = field
        self.message = message
    }

    public var description: String { "\(path): \(field): \(message)" }
}

extension CompactLayout {
    /// Checks the block against itself and against the model it sits next to: the dense sizes against `config`,
    /// the kept counts against `shape` (which the loader inferred from the tensors), the indices (strictly
    /// increasing, inside the original sizes) and the derived sizes. `file` names the source in the error.
    public func validate(shape: BertShape, config: BertConfig, file: String) throws {
        func fail(_ field: String, _ message: String) -> CompactFormatError {
            CompactFormatError(path: file, field: "cofi." + field, message: message)
        }
        guard formatVersion == Self.currentFormatVersion else {
            throw fail("format_version", "is \(formatVersion); this version of cofi reads format \(Self.currentFormatVersion)")
        }
        for (field, value, dense) in [("original_hidden_size", originalHiddenSize, config.hiddenSize),
                                      ("original_num_attention_heads", originalNumAttentionHeads, config.numAttentionHeads),
                                      ("original_intermediate_size", originalIntermediateSize, config.intermediateSize)]
            where value != dense {
            throw fail(field, "is \(value) but the config's \(field.dropFirst("original_".count)) is \(dense)")
        }
        guard headDim == shape.headDim else {
            throw fail("head_dim", "is \(headDim) but the model's head width (hidden_size / num_attention_heads) is \(shape.headDim)")
        }
        func checkIndices(_ field: String, _ indices: [Int], below limit: Int, _ limitName: String) throws {
            for (k, i) in indices.enumerated() {
                guard i >= 0, i < limit else {
                    throw fail(field, "index \(i) (entry \(k)) is outside [0, \(limitName) = \(limit))")
                }
                guard k == 0 || indices[k - 1] < i else {
                    throw fail(field, "indices must be strictly increasing; entry \(k) is \(i) after \(indices[k - 1])")
                }
            }
        }
        try checkIndices("kept_hidden_indices", keptHidden, below: originalHiddenSize, "original_hidden_size")
        guard hiddenSize == keptHidden.count else {
            throw fail("hidden_size", "is \(hiddenSize) but kept_hidden_indices lists \(keptHidden.count) dims")
        }
        guard hiddenSize == shape.hiddenSize else {
            throw fail("hidden_size", "is \(hiddenSize) but the tensors are \(shape.hiddenSize) wide "
                + "(\(CheckpointKeys.wordEmbeddings.weight) [vocab, hidden])")
        }
        guard layers.count == shape.layers.count else {
            throw fail("layers", "has \(layers.count) entries but the model has \(shape.layers.count) layers (num_hidden_layers)")
        }
        for (l, layer) in layers.enumerated() {
            let at = "layers[\(l)]."
            try checkIndices(at + "kept_heads", layer.keptHeads, below: originalNumAttentionHeads, "original_num_attention_heads")
            try checkIndices(at + "kept_ffn_units", layer.keptFFNUnits, below: originalIntermediateSize, "original_intermediate_size")
            guard layer.numHeads == layer.keptHeads.count else {
                throw fail(at + "num_heads", "is \(layer.numHeads) but kept_heads lists \(layer.keptHeads.count) heads")
            }
            guard layer.numHeads == shape.layers[l].heads else {
                throw fail(at + "kept_heads", "lists \(layer.numHeads) heads but the tensors hold \(shape.layers[l].heads) "
                    + "(\(CheckpointKeys.layer(l).attentionOutput.weight) [hidden, heads × \(shape.headDim)]; absent = 0)")
            }
            guard layer.ffnWidth == layer.keptFFNUnits.count else {
                throw fail(at + "ffn_width", "is \(layer.ffnWidth) but kept_ffn_units lists \(layer.keptFFNUnits.count) units")
            }
            guard layer.ffnWidth == shape.layers[l].ffnWidth else {
                throw fail(at + "kept_ffn_units", "lists \(layer.ffnWidth) units but the tensors hold \(shape.layers[l].ffnWidth) "
                    + "(\(CheckpointKeys.layer(l).output.weight) [hidden, units]; absent = 0)")
            }
        }
        let original = BertShape(config: config).prunableParameters
        for (field, value, actual) in [("encoder_parameters", encoderParameters, shape.encoderParameters),
                                       ("prunable_parameters", prunableParameters, shape.prunableParameters),
                                       ("original_prunable_parameters", originalPrunableParameters, original)]
            where value != actual {
            throw fail(field, "is \(value) but the model's shape gives \(actual)")
        }
        let exact = original == 0 ? 0 : 1 - Double(prunableParameters) / Double(original)
        guard isClose(sparsity, exact, tolerance: 1e-9) else {
            throw fail("sparsity", "is \(sparsity) but 1 − prunable_parameters / original_prunable_parameters = \(exact)")
        }
    }

    /// A decoding error as the dotted field at fault (`cofi.layers[2].kept_heads`) and what went wrong.
    static func formatError(_ error: DecodingError, path: String) -> CompactFormatError {
        func dotted(_ keys: [CodingKey]) -> String {
            keys.reduce("") { s, k in
                if let i = k.intValue { return s + "[\(i)]" }
                return s.isEmpty ? k.stringValue : s + "." + k.stringValue
            }
        }
        switch error {
        case .keyNotFound(let key, let context):
            return CompactFormatError(path: path, field: dotted(context.codingPath + [key]), message: "missing required key")
        case .typeMismatch(let type, let context):
            return CompactFormatError(path: path, field: dotted(context.codingPath),
                                      message: "expected \(describe(type)) (\(context.debugDescription))")
        case .valueNotFound(let type, let context):
            return CompactFormatError(path: path, field: dotted(context.codingPath), message: "expected \(describe(type)), found null")
        case .dataCorrupted(let context):
            let field = context.codingPath.isEmpty ? "config.json" : dotted(context.codingPath)
            return CompactFormatError(path: path, field: field, message: context.debugDescription)
        @unknown default:
            return CompactFormatError(path: path, field: "cofi", message: "\(error)")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        JSONValue.describe(type, otherwise: "a value of type \(type)")
    }
}

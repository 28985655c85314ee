/// The Hugging Face tensor names of a BERT task model, spelled out here and nowhere else: the model's
/// `namedParameters`, the checkpoint loader, its shape inference and CoFi's compaction all walk the model
/// through these keys, so that they read and write the same names.
///
/// A name is a module's path plus `.weight` or `.bias` (LayerNorm's gain and bias too: `LayerNorm.weight`,
/// `LayerNorm.bias`, never gamma/beta). The encoder lies under `bert.`, the task heads at the top level
/// (`classifier.`, `qa_outputs.`), as in `BertForSequenceClassification` / `BertForQuestionAnswering`.

/// A module's path in the checkpoint's name tree, e.g. `bert.encoder.layer.0.attention.self.query`.
/// `pp` goes one level down, as candle's `VarBuilder.pp` does; `weight` and `bias` name the module's parameters.
public struct CheckpointKey: Hashable, Sendable, CustomStringConvertible {
    public let path: String

    public init(_ path: String) { self.path = path }

    /// The sub-module `component` of this one.
    public func pp(_ component: String) -> CheckpointKey { CheckpointKey(path + "." + component) }
    /// The `index`-th entry of this module list (`bert.encoder.layer` → `bert.encoder.layer.3`).
    public func pp(_ index: Int) -> CheckpointKey { pp(String(index)) }

    /// The module's weight (a linear layer's W, an embedding table, a LayerNorm's gain).
    public var weight: String { path + ".weight" }
    /// The module's bias.
    public var bias: String { path + ".bias" }

    /// Whether `name` lies under this module (starts with the path and a dot).
    public func contains(_ name: String) -> Bool { name.hasPrefix(path + ".") }
    /// `name` with this module's path and its dot removed; `name` must lie under the module.
    public func relative(_ name: String) -> String {
        precondition(contains(name), "'\(name)' does not lie under '\(path)'")
        return String(name.dropFirst(path.count + 1))
    }

    public var description: String { path }
}

/// The keys of every module of a BERT task model.
public enum CheckpointKeys {
    /// The encoder, `bert`. Checkpoints of a bare encoder (`BertModel` in Hugging Face) store its names without
    /// this prefix; the loader accepts both.
    public static let encoder = CheckpointKey("bert")

    public static let embeddings = encoder.pp("embeddings")
    public static let wordEmbeddings = embeddings.pp("word_embeddings")
    public static let positionEmbeddings = embeddings.pp("position_embeddings")
    public static let tokenTypeEmbeddings = embeddings.pp("token_type_embeddings")
    public static let embeddingNorm = embeddings.pp(layerNorm)

    /// Encoder layer `l` (0-based).
    public static func layer(_ l: Int) -> LayerKeys { LayerKeys(root: encoder.pp("encoder").pp("layer").pp(l)) }

    /// The pooler's dense layer.
    public static let pooler = encoder.pp("pooler").pp("dense")

    /// The sequence head (classification and regression).
    public static let classifier = CheckpointKey("classifier")
    /// The span head (start and end logits).
    public static let spanHead = CheckpointKey("qa_outputs")

    /// The head of `task`.
    public static func head(_ task: TaskHeadKind) -> CheckpointKey {
        switch task {
        case .classification, .regression: return classifier
        case .span: return spanHead
        }
    }

    /// The name of every LayerNorm module.
    static let layerNorm = "LayerNorm"

    /// `canonical` without the encoder's `bert.` prefix, or nil for a name outside the encoder (a head).
    public static func withoutEncoderPrefix(_ canonical: String) -> String? {
        encoder.contains(canonical) ? encoder.relative(canonical) : nil
    }

    /// A bias or a LayerNorm parameter by its name: it ends in `.bias` or holds `LayerNorm.` (Hugging Face's
    /// rule for the parameters without weight decay; it reads names only, so it applies to any module).
    public static func isBiasOrNorm(_ name: String) -> Bool {
        name.hasSuffix(".bias") || name.contains(layerNorm + ".")
    }
}

/// The keys of one encoder layer's modules, under `bert.encoder.layer.<l>`.
public struct LayerKeys: Sendable {
    /// `bert.encoder.layer.<l>`.
    public let root: CheckpointKey

    var selfAttention: CheckpointKey { root.pp("attention").pp("self") }
    public var query: CheckpointKey { selfAttention.pp("query") }
    public var key: CheckpointKey { selfAttention.pp("key") }
    public var value: CheckpointKey { selfAttention.pp("value") }
    /// W_O, the attention output projection.
    public var attentionOutput: CheckpointKey { root.pp("attention").pp("output").pp("dense") }
    public var attentionNorm: CheckpointKey { root.pp("attention").pp("output").pp(CheckpointKeys.layerNorm) }
    /// W_U, the FFN's up projection.
    public var intermediate: CheckpointKey { root.pp("intermediate").pp("dense") }
    /// W_D, the FFN's down projection.
    public var output: CheckpointKey { root.pp("output").pp("dense") }
    public var outputNorm: CheckpointKey { root.pp("output").pp(CheckpointKeys.layerNorm) }

    /// `name` relative to the layer (`attention.self.query.weight`), as error messages name a layer's tensors.
    public func local(_ name: String) -> String { root.relative(name) }
}

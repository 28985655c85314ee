import Foundation
import Tensor

/// Loading and saving BERT checkpoints in Hugging Face layout (`config.json` + `model.safetensors`).
///
/// Tensor names are those of `CheckpointKeys`, accepted with or without the `bert.` prefix. Per-layer shapes
/// come from the tensors, not from config.json (CoFi's compact checkpoints keep the dense config, cofi-spec §7): heads from
/// `attention.output.dense.weight` [D, H·Dh], FFN width from `output.dense.weight` [D, I]; a missing
/// sublayer means it was pruned away. Heads and pooler that the checkpoint lacks are initialised as
/// Hugging Face does: normal(0, initializer_range) weights, zero biases.

/// A checkpoint that cannot be loaded: names the file, the tensor and what was expected.
public struct CheckpointError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension BertModel {
    /// Loads `directory/config.json` and `directory/model.safetensors`. `task` selects the head; nil keeps
    /// whatever head the checkpoint has (none for a bare encoder). Missing head weights are drawn with `seed`.
    public static func load(directory: URL, task: TaskHeadKind? = nil, seed: UInt64 = 57) throws -> BertModel {
        let config = try BertConfig.load(from: directory.appendingPathComponent("config.json"))
        let weightsURL = directory.appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            throw CheckpointError("\(weightsURL.path): no such file (expected the model weights in safetensors format)")
        }
        let weights = try SafetensorsFile(contentsOf: weightsURL)
        return try load(config: config, weights: weights, task: task, seed: seed)
    }

    /// Builds a model from `config` and the tensors of `weights`; see `load(directory:task:seed:)`.
    public static func load(config: BertConfig, weights: SafetensorsFile, task: TaskHeadKind? = nil,
                            seed: UInt64 = 57) throws -> BertModel {
        let source = WeightSource(file: weights)
        let shape = try inferShape(config: config, source: source)
        let resolvedTask = try task ?? source.detectTask(config: config)
        var rng = Xoshiro256(seed: seed)
        return try build(config: config, shape: shape, task: resolvedTask) { name, expected, kind in
            if let t = try source.tensor(name, shape: expected) { return t }
            return try source.fallback(name, shape: expected, kind: kind, config: config, rng: &rng)
        }
    }

    /// A freshly initialised model (Hugging Face's `_init_weights`), seeded.
    public static func randomlyInitialized(config: BertConfig, shape: BertShape? = nil, task: TaskHeadKind?,
                                           seed: UInt64) -> BertModel {
        var rng = Xoshiro256(seed: seed)
        let std = Float(config.initializerRange)
        let pad = config.padTokenId
        return try! build(config: config, shape: shape ?? BertShape(config: config), task: task) { name, s, kind in
            switch kind {
            case .weight:
                var t = Tensor.randomNormal(shape: s, std: std, using: &rng)
                if name == CheckpointKeys.wordEmbeddings.weight, pad >= 0, pad < s[0] {
                    for j in 0..<s[1] { t.scalars[pad * s[1] + j] = 0 }
                }
                return t
            case .bias, .normBias: return Tensor(zeros: s)
            case .normWeight: return Tensor(repeating: 1, shape: s)
            }
        }
    }

    // Added for CoFi compaction (Sources/CoFi/Compaction.swift), which builds the cut model in memory: the
    // sub-module types have no public initialisers, so this is the one public way to make a model from tensors.
    /// A model of `shape` whose parameters are `tensors`, keyed by the canonical names of `namedParameters`
    /// (`bert.`-prefixed encoder, `classifier.` / `qa_outputs.` head). Throws `CheckpointError` naming a
    /// missing or mis-shaped tensor, or one that the shape does not use.
    public static func assemble(config: BertConfig, shape: BertShape, task: TaskHeadKind?,
                                tensors: [String: Tensor]) throws -> BertModel {
        var used = Set<String>()
        let model = try build(config: config, shape: shape, task: task) { name, expected, _ in
            guard let t = tensors[name] else { throw CheckpointError("assemble: missing tensor '\(name)' with shape \(expected)") }
            guard t.shape == expected else { throw CheckpointError("assemble: tensor '\(name)' has shape \(t.shape), expected \(expected)") }
            used.insert(name)
            return t
        }
        if let extra = tensors.keys.sorted().first(where: { !used.contains($0) }) {
            throw CheckpointError("assemble: tensor '\(extra)' is not a parameter of a model of this shape and task")
        }
        return model
    }

    /// What a parameter is, for initialisation.
    enum ParameterKind { case weight, bias, normWeight, normBias }

    /// Assembles a model of `shape`, asking `make` for each parameter by its canonical name (`CheckpointKeys`),
    /// in the order of `namedParameters`.
    static func build(config: BertConfig, shape: BertShape, task: TaskHeadKind?,
                      make: (String, [Int], ParameterKind) throws -> Tensor) throws -> BertModel {
        let D = shape.hiddenSize
        func param(_ name: String, _ s: [Int], _ kind: ParameterKind) throws -> Variable {
            Variable(try make(name, s, kind), requiresGrad: true, name: name)
        }
        func lin(_ key: CheckpointKey, out: Int, in inF: Int) throws -> Linear {
            Linear(weight: try param(key.weight, [out, inF], .weight), bias: try param(key.bias, [out], .bias))
        }
        func ln(_ key: CheckpointKey) throws -> LayerNormWeights {
            LayerNormWeights(weight: try param(key.weight, [D], .normWeight), bias: try param(key.bias, [D], .normBias))
        }
        let emb = BertEmbeddings(
            wordEmbeddings: try param(CheckpointKeys.wordEmbeddings.weight, [shape.vocabSize, D], .weight),
            positionEmbeddings: try param(CheckpointKeys.positionEmbeddings.weight, [shape.maxPositions, D], .weight),
            tokenTypeEmbeddings: try param(CheckpointKeys.tokenTypeEmbeddings.weight, [shape.typeVocabSize, D], .weight),
            layerNorm: try ln(CheckpointKeys.embeddingNorm))
        var layers: [BertLayer] = []
        for (l, ls) in shape.layers.enumerated() {
            let k = CheckpointKeys.layer(l)
            let hd = ls.heads * shape.headDim
            let att: BertAttention? = ls.heads == 0 ? nil : BertAttention(
                heads: ls.heads,
                query: try lin(k.query, out: hd, in: D),
                key: try lin(k.key, out: hd, in: D),
                value: try lin(k.value, out: hd, in: D),
                output: try lin(k.attentionOutput, out: D, in: hd),
                layerNorm: try ln(k.attentionNorm))
            let ffn: BertFeedForward? = ls.ffnWidth == 0 ? nil : BertFeedForward(
                intermediate: try lin(k.intermediate, out: ls.ffnWidth, in: D),
                output: try lin(k.output, out: D, in: ls.ffnWidth),
                layerNorm: try ln(k.outputNorm))
            layers.append(BertLayer(attention: att, feedForward: ffn))
        }
        // The pooler is part of the encoder checkpoint; a span head does not use it.
        let pooler = task == .span ? nil : try lin(CheckpointKeys.pooler, out: shape.poolerWidth, in: D)
        let head = try task.map { t in
            try lin(CheckpointKeys.head(t), out: t.outputs, in: t.usesPooler ? shape.poolerWidth : D)
        }
        return BertModel(config: config, shape: shape, embeddings: emb, layers: layers, pooler: pooler, head: head,
                         task: task)
    }

    /// The per-layer shape stored in `weights` (see the type's notes).
    public static func inferShape(config: BertConfig, weights: SafetensorsFile) throws -> BertShape {
        try inferShape(config: config, source: WeightSource(file: weights))
    }

    static func inferShape(config: BertConfig, source: WeightSource) throws -> BertShape {
        let word = try source.requiredShape(CheckpointKeys.wordEmbeddings.weight, rank: 2)
        let hidden = word[1]
        let dh = config.headDim
        var layers: [LayerShape] = []
        for l in 0..<config.numHiddenLayers {
            let k = CheckpointKeys.layer(l)
            var heads = 0, ffn = 0
            if let s = try source.optionalShape(k.attentionOutput.weight, rank: 2) {
                guard s[1] % dh == 0 else {
                    throw source.error(k.attentionOutput.weight,
                                       "has shape \(s), whose input width \(s[1]) is not a multiple of the head width \(dh) (hidden_size / num_attention_heads in config.json)")
                }
                heads = s[1] / dh
            } else if source.has(k.query.weight) {
                throw source.error(k.attentionOutput.weight, "is missing although the layer has \(k.local(k.query.weight))")
            }
            if let s = try source.optionalShape(k.output.weight, rank: 2) {
                ffn = s[1]
            } else if source.has(k.intermediate.weight) {
                throw source.error(k.output.weight, "is missing although the layer has \(k.local(k.intermediate.weight))")
            }
            layers.append(LayerShape(heads: heads, ffnWidth: ffn))
        }
        let beyond = CheckpointKeys.layer(config.numHiddenLayers)
        if source.has(beyond.attentionOutput.weight) || source.has(beyond.output.weight) {
            throw CheckpointError("\(source.path): holds weights for more than num_hidden_layers = \(config.numHiddenLayers) layers (config.json)")
        }
        let position = try source.requiredShape(CheckpointKeys.positionEmbeddings.weight, rank: 2)
        let types = try source.requiredShape(CheckpointKeys.tokenTypeEmbeddings.weight, rank: 2)
        let poolerWidth = try source.optionalShape(CheckpointKeys.pooler.weight, rank: 2)?[0]
        return BertShape(vocabSize: word[0], hiddenSize: hidden, headDim: dh, maxPositions: position[0],
                         typeVocabSize: types[0], layers: layers, poolerWidth: poolerWidth)
    }

    /// Writes `config.json` (the model's config, as loaded) and `model.safetensors` (every parameter under its
    /// Hugging Face task-model name) into `directory`, each atomically.
    public func save(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var tensors: [String: Tensor] = [:]
        for (name, p) in namedParameters { tensors[name] = p.value }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: directory.appendingPathComponent("model.safetensors"))
        try config.write(to: directory.appendingPathComponent("config.json"))
    }
}

/// Name resolution over a safetensors file: canonical names carry the `bert.` prefix; files may omit it.
struct WeightSource {
    let file: SafetensorsFile
    var path: String { file.url.path }

    /// The name under which `canonical` is stored, if any.
    func storedName(_ canonical: String) -> String? {
        if file.contains(canonical) { return canonical }
        if let bare = CheckpointKeys.withoutEncoderPrefix(canonical), file.contains(bare) { return bare }
        return nil
    }

    func has(_ canonical: String) -> Bool { storedName(canonical) != nil }

    /// The prefix that a file may leave off, as error messages name it.
    var encoderPrefix: String { CheckpointKeys.encoder.path + "." }

    func error(_ canonical: String, _ what: String) -> CheckpointError {
        CheckpointError("\(path): tensor '\(storedName(canonical) ?? canonical)' \(what)")
    }

    func optionalShape(_ canonical: String, rank: Int) throws -> [Int]? {
        guard let name = storedName(canonical) else { return nil }
        let s = try file.info(name).shape
        guard s.count == rank else { throw error(canonical, "has shape \(s), expected rank \(rank)") }
        return s
    }

    func requiredShape(_ canonical: String, rank: Int) throws -> [Int] {
        guard let s = try optionalShape(canonical, rank: rank) else {
            throw CheckpointError("\(path): missing tensor '\(canonical)' (also looked for it without the '\(encoderPrefix)' prefix)")
        }
        return s
    }

    /// The tensor, checked against `shape`, or nil if the file lacks it.
    func tensor(_ canonical: String, shape: [Int]) throws -> Tensor? {
        guard let name = storedName(canonical) else { return nil }
        let s = try file.info(name).shape
        guard s == shape else { throw error(canonical, "has shape \(s), expected \(shape)") }
        return try file.tensor(name)
    }

    /// What to do about a tensor the file lacks: heads and pooler are initialised; encoder weights are required.
    func fallback(_ canonical: String, shape: [Int], kind: BertModel.ParameterKind, config: BertConfig,
                  rng: inout Xoshiro256) throws -> Tensor {
        let initialisable = [CheckpointKeys.classifier, CheckpointKeys.spanHead, CheckpointKeys.pooler]
            .contains { $0.contains(canonical) }
        guard initialisable else {
            throw CheckpointError("\(path): missing tensor '\(canonical)' with shape \(shape) (also looked for it without the '\(encoderPrefix)' prefix)")
        }
        switch kind {
        case .weight: return Tensor.randomNormal(shape: shape, std: Float(config.initializerRange), using: &rng)
        case .bias, .normBias: return Tensor(zeros: shape)
        case .normWeight: return Tensor(repeating: 1, shape: shape)
        }
    }

    /// The head stored in the file: a classifier (one output: regression) or a span head, else none.
    func detectTask(config: BertConfig) throws -> TaskHeadKind? {
        if let s = try optionalShape(CheckpointKeys.classifier.weight, rank: 2) {
            return s[0] == 1 ? .regression : .classification(labels: s[0])
        }
        if has(CheckpointKeys.spanHead.weight) { return .span }
        return nil
    }
}

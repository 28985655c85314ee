import Foundation
import Tensor

/// Loading and saving BERT checkpoints in Hugging Face layout (`config.json` + `model.safetensors`).
///
/// Tensor names are those of `CheckpointKeys`, accepted with or without the `bert.` prefix. Every load validates
/// the whole directory before it builds anything (one line per failure, naming the file, the key or tensor, what was
/// found and what was expected):
/// - config.json's values (`BertConfig.validate`: sizes positive and bounded, label maps one-to-one);
/// - the safetensors data region, exactly covered by the tensors (`SafetensorsFile`);
/// - the tensors are exactly the set the config and its `cofi` block (`CompactLayout`) imply, each of the implied
///   shape: a dense config wants every layer whole; a layer's heads and FFN width may be fewer, or its sublayer
///   absent, only where the `cofi` block says so (the block is checked against the tensors); the embedding tables
///   have `vocab_size`, `max_position_embeddings` and `type_vocab_size` rows;
/// - a stored head (`classifier`, `qa_outputs`) and the pooler have both weight and bias; a classifier has
///   `num_labels` rows (one row only for a regression model: `problem_type` "regression" or `num_labels` 1);
/// - every weight is finite (unless `ModelLoadOptions.allowNonFiniteWeights`).
/// A tensor the model does not use is a warning (on stderr, once per file; Hugging Face's embedding buffers
/// `position_ids` and `token_type_ids` aside), not an error. A head that the checkpoint lacks entirely is
/// initialised as Hugging Face does (normal(0, initializer_range) weights, zero biases) only when the caller names
/// the task to train it (`task:`), and the pooler with it; inference loads (`task: nil`) take the head the
/// checkpoint has.

/// A checkpoint that cannot be loaded: names the file, the tensor and what was expected.
public struct CheckpointError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What `BertModel.load` accepts beyond a valid checkpoint.
public struct ModelLoadOptions: Equatable, Sendable {
    /// Accept NaN and infinite weights, to look into a broken model (`cofi eval`, `predict`, `bench` and `serve`:
    /// `--allow-non-finite`); by default the first one is an error naming the tensor and the element.
    public var allowNonFiniteWeights: Bool

    public init(allowNonFiniteWeights: Bool = false) {
        self.allowNonFiniteWeights = allowNonFiniteWeights
    }
}

extension BertModel {
    /// A model directory's name, with its parent's for the generic names cofi gives outputs
    /// (`runs/prune95/final` → `prune95/final`): how `cofi bench`, `cofi serve` and the model cards name a model.
    public static func displayName(of directory: URL) -> String {
        let url = directory.standardizedFileURL
        let last = url.lastPathComponent
        guard ["best", "final", "checkpoint", "pruned", "last"].contains(last) else { return last }
        return url.deletingLastPathComponent().lastPathComponent + "/" + last
    }
}

extension BertModel {
    /// Loads and validates `directory/config.json` and `directory/model.safetensors` (see the notes above).
    /// `task` nil keeps the head the checkpoint has (none for a bare encoder) — the way to load a model for
    /// inference; a `task` names the head to train, which is initialised with `seed` when the checkpoint has none.
    public static func load(directory: URL, task: TaskHeadKind? = nil, seed: UInt64 = 57,
                            options: ModelLoadOptions = ModelLoadOptions()) throws -> BertModel {
        let configURL = directory.appendingPathComponent("config.json")
        let config = try BertConfig.load(from: configURL)
        let weightsURL = directory.appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            throw CheckpointError("\(weightsURL.path): no such file (expected the model weights in safetensors format)")
        }
        let weights = try SafetensorsFile(contentsOf: weightsURL)
        return try load(config: config, configPath: configURL.path, weights: weights, task: task, seed: seed,
                        options: options)
    }

    /// Builds a model from `config` and the tensors of `weights`, validated as `load(directory:task:seed:options:)`
    /// does (the config too).
    public static func load(config: BertConfig, weights: SafetensorsFile, task: TaskHeadKind? = nil,
                            seed: UInt64 = 57, options: ModelLoadOptions = ModelLoadOptions()) throws -> BertModel {
        try load(config: config, configPath: "config.json", weights: weights, task: task, seed: seed, options: options)
    }

    static func load(config: BertConfig, configPath: String, weights: SafetensorsFile, task: TaskHeadKind?,
                     seed: UInt64, options: ModelLoadOptions) throws -> BertModel {
        try config.validate(file: configPath)
        let source = WeightSource(file: weights, allowNonFinite: options.allowNonFiniteWeights)
        let stored = try inferShape(config: config, source: source)
        if let layout = config.compact { try layout.validate(shape: stored, config: config, file: configPath) }
        try source.check(stored, against: config)
        let resolvedTask = try task ?? source.detectTask(config: config)
        for key in [CheckpointKeys.classifier, CheckpointKeys.spanHead, CheckpointKeys.pooler] {
            try source.checkPair(key)
        }
        // Only a head the caller asked for and the checkpoint lacks is made up, and the pooler with it; a stored
        // sequence head needs its stored pooler.
        let freshHead = resolvedTask.map { !source.has(CheckpointKeys.head($0).weight) } ?? false
        let hasPooler = source.has(CheckpointKeys.pooler.weight)
        if let resolvedTask, resolvedTask.usesPooler, !freshHead, !hasPooler {
            throw source.missing(CheckpointKeys.pooler.weight,
                                "(the stored head '\(CheckpointKeys.head(resolvedTask).weight)' reads the pooler's output)")
        }
        var shape = stored
        shape.poolerWidth = hasPooler ? config.hiddenSize : stored.hiddenSize
        var rng = Xoshiro256(seed: seed)
        var used = Set<String>()
        let model = try build(config: config, shape: shape, task: resolvedTask) { name, expected, kind in
            if let t = try source.tensor(name, shape: expected) {
                used.insert(source.storedName(name)!)
                return t
            }
            let initialisable = (freshHead && resolvedTask.map { CheckpointKeys.head($0).contains(name) } == true)
                || (CheckpointKeys.pooler.contains(name) && (freshHead || resolvedTask == nil))
            guard initialisable else {
                throw source.missing(name, "with shape \(expected)")
            }
            return source.initialised(shape: expected, kind: kind, config: config, rng: &rng)
        }
        source.warnAboutUnused(used)
        return model
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

    /// A model of `shape` whose parameters `make(name, shape)` gives, asked for by canonical name in the order of
    /// `namedParameters` (as `assemble(tensors:)` takes them from a table): how `cofi profile` builds the synthetic
    /// models it times without materialising a table first. Throws `CheckpointError` for a tensor of another
    /// shape, and whatever `make` throws.
    public static func assemble(config: BertConfig, shape: BertShape, task: TaskHeadKind?,
                                make: (_ name: String, _ shape: [Int]) throws -> Tensor) throws -> BertModel {
        try build(config: config, shape: shape, task: task) { name, expected, _ in
            let t = try make(name, expected)
            guard t.shape == expected else { throw CheckpointError("assemble: tensor '\(name)' has shape \(t.shape), expected \(expected)") }
            return t
        }
    }

    /// What a parameter is, for initialisation.
    enum ParameterKind { case weight, bias, normWeight, normBias }

    /// Assembles a model of `shape`, asking `make` for each parameter by its canonical name (`CheckpointKeys`),
    /// in the order of `namedParameters`. A config without a `cofi` block gets one describing `shape` when the
    /// shape is not its dense one (`CompactLayout(describing:config:)`), so that the model saves as it loads.
    static func build(config: BertConfig, shape: BertShape, task: TaskHeadKind?,
                      make: (String, [Int], ParameterKind) throws -> Tensor) throws -> BertModel {
        var config = config
        if config.compact == nil { config.compact = CompactLayout(describing: shape, config: config) }
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

    /// The per-layer shape stored in `weights`: heads from `attention.output.dense.weight` [D, H·Dh], FFN width from
    /// `output.dense.weight` [D, I], 0 for an absent sublayer. What the loader checks against the config and its
    /// `cofi` block; it does not check that the shape is the one they imply.
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

    /// Writes `config.json` (the model's config, as loaded, with its `cofi` block) and `model.safetensors` (every
    /// parameter under its Hugging Face task-model name) into `directory`, each atomically.
    public func save(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var tensors: [String: Tensor] = [:]
        for (name, p) in namedParameters { tensors[name] = p.value }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: directory.appendingPathComponent("model.safetensors"))
        try config.describingHead(task).write(to: directory.appendingPathComponent("config.json"))
    }
}

extension BertConfig {
    /// This config with its label fields made to agree with `task`'s head where they do not, so that the loader
    /// reads the head back as that task: `num_labels` n for a classifier of n classes (label maps of another size
    /// dropped), `problem_type` "regression" and `num_labels` 1 for a regression head. Unchanged otherwise.
    public func describingHead(_ task: TaskHeadKind?) -> BertConfig {
        var c = self
        func dropLabelMaps(unlessOf n: Int) {
            if c.id2label?.count != n { c.id2label = nil }
            if c.label2id?.count != n { c.label2id = nil }
        }
        switch task {
        case .classification(let n)?:
            if c.problemType == "regression" { c.problemType = nil }
            if c.numLabels != n { c.numLabels = n }
            dropLabelMaps(unlessOf: n)
        case .regression?:
            if c.problemType != "regression" && c.numLabels != 1 {
                c.problemType = "regression"
                c.numLabels = 1
                dropLabelMaps(unlessOf: 1)
            }
        case .span?, nil:
            break
        }
        return c
    }
}

/// Name resolution over a safetensors file (canonical names carry the `bert.` prefix; files may omit it), and the
/// loader's checks of what the file holds.
struct WeightSource {
    let file: SafetensorsFile
    /// Whether NaN and infinite weights are accepted.
    var allowNonFinite = false
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

    /// A required tensor that the file lacks; `what` says what it is, or why it is required.
    func missing(_ canonical: String, _ what: String) -> CheckpointError {
        let bare = CheckpointKeys.withoutEncoderPrefix(canonical) == nil ? "" : " (also looked for it without the '\(encoderPrefix)' prefix)"
        return CheckpointError("\(path): missing tensor '\(canonical)' \(what)\(bare)")
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

    /// The tensor, checked against `shape` and, unless allowed, for NaN and infinities; nil if the file lacks it.
    func tensor(_ canonical: String, shape: [Int]) throws -> Tensor? {
        guard let name = storedName(canonical) else { return nil }
        let s = try file.info(name).shape
        guard s == shape else { throw error(canonical, "has shape \(s), expected \(shape)") }
        let t = try file.tensor(name)
        if !allowNonFinite, let i = Self.firstNonFinite(t.scalars) {
            let v = t.scalars[i]
            throw error(canonical, "holds \(v.isNaN ? "NaN" : v > 0 ? "+infinity" : "-infinity") at element \(i) "
                + "(of \(t.count), shape \(s)); expected finite weights (to load it anyway, for debugging: "
                + "--allow-non-finite on cofi eval, predict, bench and serve)")
        }
        return t
    }

    /// The index of the first NaN or infinity in `values`, if any (exponent bits all ones).
    static func firstNonFinite(_ values: [Float]) -> Int? {
        values.withUnsafeBufferPointer { buffer -> Int? in
            for i in 0..<buffer.count where buffer[i].bitPattern & 0x7F80_0000 == 0x7F80_0000 { return i }
            return nil
        }
    }

    /// A parameter the file lacks and the loader may make up: Hugging Face's initialisation.
    func initialised(shape: [Int], kind: BertModel.ParameterKind, config: BertConfig, rng: inout Xoshiro256) -> Tensor {
        switch kind {
        case .weight: return Tensor.randomNormal(shape: shape, std: Float(config.initializerRange), using: &rng)
        case .bias, .normBias: return Tensor(zeros: shape)
        case .normWeight: return Tensor(repeating: 1, shape: shape)
        }
    }

    /// Checks the stored shape against the one `config` implies: embedding rows against `vocab_size`,
    /// `max_position_embeddings` and `type_vocab_size`; without a `cofi` block (whose own check covers the rest),
    /// the full hidden width, and every layer with all its heads and FFN units.
    func check(_ stored: BertShape, against config: BertConfig) throws {
        let word = CheckpointKeys.wordEmbeddings.weight
        for (key, rows, expected, field) in [
            (word, stored.vocabSize, config.vocabSize, "vocab_size"),
            (CheckpointKeys.positionEmbeddings.weight, stored.maxPositions, config.maxPositionEmbeddings, "max_position_embeddings"),
            (CheckpointKeys.tokenTypeEmbeddings.weight, stored.typeVocabSize, config.typeVocabSize, "type_vocab_size"),
        ] where rows != expected {
            throw error(key, "has \(rows) rows, expected \(expected) (\(field) in config.json)")
        }
        guard config.compact == nil else { return }
        let unpruned = "config.json has no cofi block saying it was pruned"
        guard stored.hiddenSize == config.hiddenSize else {
            throw error(word, "is \(stored.hiddenSize) wide, expected hidden_size = \(config.hiddenSize) (config.json; a model "
                + "with a cut hidden width needs the cofi block that says which dims it kept)")
        }
        for (l, layer) in stored.layers.enumerated() {
            let k = CheckpointKeys.layer(l)
            if layer.heads == 0 {
                throw missing(k.attentionOutput.weight, "(layer \(l)'s attention: \(config.numAttentionHeads) heads, "
                    + "num_attention_heads in config.json; \(unpruned))")
            }
            if layer.heads != config.numAttentionHeads {
                throw error(k.attentionOutput.weight, "holds \(layer.heads) heads (\(layer.heads * stored.headDim) columns), "
                    + "expected num_attention_heads = \(config.numAttentionHeads) (config.json; \(unpruned))")
            }
            if layer.ffnWidth == 0 {
                throw missing(k.output.weight, "(layer \(l)'s feed-forward: \(config.intermediateSize) units, "
                    + "intermediate_size in config.json; \(unpruned))")
            }
            if layer.ffnWidth != config.intermediateSize {
                throw error(k.output.weight, "holds \(layer.ffnWidth) FFN units, expected intermediate_size = "
                    + "\(config.intermediateSize) (config.json; \(unpruned))")
            }
        }
    }

    /// A linear module stored by half: a weight without its bias or a bias without its weight.
    func checkPair(_ key: CheckpointKey) throws {
        switch (has(key.weight), has(key.bias)) {
        case (true, false): throw missing(key.bias, "although '\(storedName(key.weight)!)' is there (a linear layer needs both)")
        case (false, true): throw missing(key.weight, "although '\(storedName(key.bias)!)' is there (a linear layer needs both)")
        default: return
        }
    }

    /// The head stored in the file, checked against config.json: a classifier with `num_labels` rows (one row is a
    /// regression head, which the config must say: `problem_type` "regression" or `num_labels` 1), or a span
    /// head; nil for none.
    func detectTask(config: BertConfig) throws -> TaskHeadKind? {
        if let s = try optionalShape(CheckpointKeys.classifier.weight, rank: 2) {
            let rows = s[0]
            if config.problemType == "regression" {
                guard rows == 1 else {
                    throw error(CheckpointKeys.classifier.weight, "has \(rows) rows, expected 1 (problem_type 'regression' in config.json)")
                }
                return .regression
            }
            if rows == 1 && config.numLabels == 1 { return .regression }
            guard rows == config.numLabels else {
                let labels = config.id2label.map { " and id2label has \($0.count) labels" } ?? ""
                throw error(CheckpointKeys.classifier.weight, "has \(rows) row\(rows == 1 ? "" : "s") (shape \(s)), expected num_labels = "
                    + "\(config.numLabels) (config.json\(labels)); a regression head has one row and problem_type 'regression'")
            }
            return .classification(labels: rows)
        }
        if has(CheckpointKeys.spanHead.weight) { return .span }
        return nil
    }

    /// Buffers that Hugging Face saves with the embeddings (index tables, not parameters): never worth a warning.
    static let buffers: Set<String> = ["position_ids", "token_type_ids"].reduce(into: []) { names, buffer in
        let name = CheckpointKeys.embeddings.pp(buffer).path
        names.insert(name)
        names.insert(CheckpointKeys.withoutEncoderPrefix(name)!)
    }

    /// Names on stderr, once per file and process, the tensors of the file that the model does not use (Hugging
    /// Face's embedding buffers aside).
    func warnAboutUnused(_ used: Set<String>) {
        let unused = file.names.filter { !used.contains($0) && !Self.buffers.contains($0) }
        guard !unused.isEmpty, WeightSource.warned.insert(path) else { return }
        let shown = unused.prefix(5).map { "'\($0)'" }.joined(separator: ", ")
        let more = unused.count > 5 ? " and \(unused.count - 5) more" : ""
        FileHandle.standardError.write(Data(("warning: \(path): \(unused.count) tensor\(unused.count == 1 ? "" : "s") "
            + "not used by the model, ignored: \(shown)\(more)\n").utf8))
    }

    /// The files warned about so far.
    static let warned = WarnedFiles()
}

/// A set of paths shared by all loads of a process.
final class WarnedFiles: @unchecked Sendable {
    private var paths = Set<String>()
    private let lock = NSLock()

    /// Adds `path`; false when it was there already.
    func insert(_ path: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return paths.insert(path).inserted
    }
}

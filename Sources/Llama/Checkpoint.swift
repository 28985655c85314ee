import Foundation
import Formats
import Tensor

/// Building a `LlamaModel` from named tensors (a safetensors file, a GGUF reader's table), random initialisation,
/// and saving as a Hugging Face directory.
extension LlamaModel {
    /// Builds the model from a Hugging Face name → tensor table (`LlamaKeys`; for GGUF names, pass the table
    /// through `LlamaKeys.fromGGUF` first). Each layer's shape comes from its tensors: a layer without
    /// `q_proj.weight` has no attention sublayer, one without `gate_proj.weight` no FFN; KV heads and FFN units may be
    /// fewer than the config's (a pruned model) but not more. Every error names `source` and the tensor: a missing
    /// or mis-shaped tensor, a layer beyond `num_hidden_layers`, a name the model does not use, an `lm_head.weight`
    /// that a tied model's embedding table contradicts (or an untied model lacks), a non-finite weight (unless
    /// `allowNonFinite`).
    public convenience init(config: LlamaConfig, tensors: [String: Tensor], source: String = "tensors",
                            allowNonFinite: Bool = false) throws {
        try config.validate(file: source)
        var used = Set<String>()
        func fail(_ name: String, _ message: String) -> FileFormatError {
            FileFormatError(path: source, key: name, message: "tensor '\(name)': \(message)")
        }
        func take(_ name: String, _ shape: [Int]) throws -> Variable {
            guard let t = tensors[name] else { throw FileFormatError(path: source, key: name, message: "missing tensor '\(name)' (\(shape))") }
            guard t.shape == shape else { throw fail(name, "shape \(t.shape), expected \(shape)") }
            if !allowNonFinite, let bad = t.scalars.firstIndex(where: { !$0.isFinite }) {
                throw fail(name, "element \(bad) is \(t.scalars[bad]) (weights must be finite)")
            }
            used.insert(name)
            return Variable(t, requiresGrad: true, name: name)
        }
        /// Rows of a [rows, cols] tensor, checked to be a positive multiple of `unit` and at most `limit`.
        func rows(_ name: String, cols: Int, unit: Int, limit: Int) throws -> Int {
            guard let t = tensors[name] else { throw FileFormatError(path: source, key: name, message: "missing tensor '\(name)'") }
            guard t.rank == 2, t.shape[1] == cols, t.shape[0] > 0, t.shape[0] % unit == 0, t.shape[0] <= limit else {
                throw fail(name, "shape \(t.shape), expected [n·\(unit), \(cols)] with 0 < n·\(unit) ≤ \(limit)")
            }
            return t.shape[0]
        }
        let c = config, D = c.hiddenSize, Dh = c.headDim, G = c.groupSize
        let embed = try take(LlamaKeys.embedTokens, [c.vocabSize, D])
        var layers: [LlamaLayer] = []
        for l in 0..<c.numHiddenLayers {
            let key = LlamaKeys.layer(l)
            var layer = LlamaLayer()
            if tensors[key.q] != nil {
                let qRows = try rows(key.q, cols: D, unit: G * Dh, limit: c.numAttentionHeads * Dh)
                let kv = qRows / G
                layer.attention = LlamaAttention(norm: try take(key.inputNorm, [D]), q: try take(key.q, [qRows, D]),
                                                 k: try take(key.k, [kv, D]), v: try take(key.v, [kv, D]),
                                                 o: try take(key.o, [D, qRows]))
            }
            if tensors[key.gate] != nil {
                let width = try rows(key.gate, cols: D, unit: 1, limit: c.intermediateSize)
                layer.ffn = LlamaFFN(norm: try take(key.postAttentionNorm, [D]), gate: try take(key.gate, [width, D]),
                                     up: try take(key.up, [width, D]), down: try take(key.down, [D, width]))
            }
            layers.append(layer)
        }
        let norm = try take(LlamaKeys.finalNorm, [D])
        var head: Variable?
        if c.tieWordEmbeddings {
            if let stored = tensors[LlamaKeys.lmHead] {
                guard stored == embed.value else {
                    throw fail(LlamaKeys.lmHead, "differs from the embedding table, but tie_word_embeddings is true")
                }
                used.insert(LlamaKeys.lmHead)
            }
        } else {
            head = try take(LlamaKeys.lmHead, [c.vocabSize, D])
        }
        if let extra = tensors.keys.filter({ !used.contains($0) }).sorted().first {
            throw fail(extra, "not a tensor of this model (\(c.numHiddenLayers) layers; every tensor of a layer needs its sublayer's projections)")
        }
        self.init(config: config, embedTokens: embed, layers: layers, norm: norm, lmHead: head)
    }

    /// Loads a Hugging Face directory: config.json and model.safetensors (float32, float16 or bfloat16 tensors).
    public static func load(directory: URL, allowNonFinite: Bool = false) throws -> LlamaModel {
        let config = try LlamaConfig.load(from: directory.appendingPathComponent("config.json"))
        let url = directory.appendingPathComponent("model.safetensors")
        let file = try SafetensorsFile(contentsOf: url)
        var tensors: [String: Tensor] = [:]
        for name in file.names { tensors[name] = try file.tensor(name) }
        return try LlamaModel(config: config, tensors: tensors, source: url.path, allowNonFinite: allowNonFinite)
    }

    /// Writes config.json and model.safetensors (float32, Hugging Face names) into `directory`, creating it. A
    /// pruned model's config keeps the dense sizes; the shapes are in the tensors, where `load` finds them.
    public func save(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let configURL = directory.appendingPathComponent("config.json")
        do {
            try Data((config.json + "\n").utf8).write(to: configURL)
        } catch {
            throw FileFormatError(path: configURL.path, message: "cannot write the file: \(error.localizedDescription)")
        }
        let tensors = Dictionary(uniqueKeysWithValues: namedParameters.map { ($0.0, $0.1.value) })
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"],
                                    to: directory.appendingPathComponent("model.safetensors"))
    }

    /// A model of `shape`'s layers (nil: the config's dense shape; tied as the config says) with N(0, std²) weights and RMSNorm gains 1 + N(0, 0.1²),
    /// drawn from `seed` in `namedParameters` order (tests, benchmarks).
    public static func random(config: LlamaConfig, shape: LlamaShape? = nil, seed: UInt64, std: Float = 0.02) -> LlamaModel {
        let s = shape ?? LlamaShape(config: config)
        var rng = Xoshiro256(seed: seed)
        let D = config.hiddenSize, Dh = config.headDim
        func weight(_ shape: [Int]) -> Variable {
            Variable(Tensor.randomNormal(shape: shape, std: std, using: &rng), requiresGrad: true)
        }
        func gain() -> Variable {
            Variable(Tensor.randomNormal(shape: [D], mean: 1, std: 0.1, using: &rng), requiresGrad: true)
        }
        let embed = weight([config.vocabSize, D])
        let layers = s.layers.map { ls -> LlamaLayer in
            var layer = LlamaLayer()
            let kv = ls.kvHeads * Dh, q = kv * s.groupSize
            if kv > 0 { layer.attention = LlamaAttention(norm: gain(), q: weight([q, D]), k: weight([kv, D]), v: weight([kv, D]), o: weight([D, q])) }
            if ls.ffnWidth > 0 {
                layer.ffn = LlamaFFN(norm: gain(), gate: weight([ls.ffnWidth, D]), up: weight([ls.ffnWidth, D]),
                                     down: weight([D, ls.ffnWidth]))
            }
            return layer
        }
        let model = LlamaModel(config: config, embedTokens: embed, layers: layers, norm: gain(),
                               lmHead: config.tieWordEmbeddings ? nil : weight([config.vocabSize, D]))
        for (name, p) in model.namedParameters { p.name = name }
        return model
    }
}

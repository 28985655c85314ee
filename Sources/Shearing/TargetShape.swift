import Foundation
import Llama

/// An error of `cofi shear`'s inputs or run, one line naming the flag or file and what was expected.
public struct ShearError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The shape `cofi shear` prunes to (Sheared-LLaMA's target model): layers, hidden width, query heads and
/// key/value heads per layer, FFN width per layer — an ordinary uniform LLaMA. Query heads come in whole key/value
/// groups of the source's G (grouped-query attention keeps every query head tied to its KV head), so
/// heads = kv-heads × G; the head width stays the source's.
public struct TargetShape: Equatable, Codable, Sendable {
    public var layers: Int
    public var hidden: Int
    public var heads: Int
    public var kvHeads: Int
    public var ffn: Int

    public init(layers: Int, hidden: Int, heads: Int, kvHeads: Int, ffn: Int) {
        self.layers = layers
        self.hidden = hidden
        self.heads = heads
        self.kvHeads = kvHeads
        self.ffn = ffn
    }

    /// The source model's own shape (the dense config).
    public init(config c: LlamaConfig) {
        self.init(layers: c.numHiddenLayers, hidden: c.hiddenSize, heads: c.numAttentionHeads,
                  kvHeads: c.numKeyValueHeads, ffn: c.intermediateSize)
    }

    /// Parses `layers=L,hidden=D,heads=H,kv-heads=K,ffn=F` (every key once, in any order; `kv-heads` may be left out
    /// when H is a whole number of the source's groups, and is then H / G).
    public static func parse(_ text: String, source c: LlamaConfig) throws -> TargetShape {
        let flag = "--target-shape"
        var values: [String: Int] = [:]
        let known = ["layers", "hidden", "heads", "kv-heads", "ffn"]
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, !kv[0].isEmpty else {
                throw ShearError("\(flag): '\(part)' is not key=value (expected layers=L,hidden=D,heads=H,kv-heads=K,ffn=F)")
            }
            guard known.contains(kv[0]) else {
                throw ShearError("\(flag): unknown key '\(kv[0])' (expected \(known.joined(separator: ", ")))")
            }
            guard values[kv[0]] == nil else { throw ShearError("\(flag): '\(kv[0])' given twice") }
            guard let n = Int(kv[1]), n > 0 else {
                throw ShearError("\(flag): \(kv[0])='\(kv[1])' is not a positive whole number")
            }
            values[kv[0]] = n
        }
        for key in ["layers", "hidden", "heads", "ffn"] where values[key] == nil {
            throw ShearError("\(flag): '\(key)' is missing (expected layers=L,hidden=D,heads=H,kv-heads=K,ffn=F)")
        }
        let G = c.groupSize, heads = values["heads"]!
        let kv = values["kv-heads"] ?? (heads % G == 0 ? heads / G : 0)
        let shape = TargetShape(layers: values["layers"]!, hidden: values["hidden"]!, heads: heads, kvHeads: kv, ffn: values["ffn"]!)
        try shape.validate(source: c)
        return shape
    }

    /// Refuses a target the source cannot be pruned to: larger than the source in any dimension, or query heads
    /// that are not whole key/value groups of the source's group size.
    public func validate(source c: LlamaConfig) throws {
        let flag = "--target-shape"
        for (name, target, source) in [("layers", layers, c.numHiddenLayers), ("hidden", hidden, c.hiddenSize),
                                       ("heads", heads, c.numAttentionHeads), ("kv-heads", kvHeads, c.numKeyValueHeads),
                                       ("ffn", ffn, c.intermediateSize)] {
            guard target <= source else {
                throw ShearError("\(flag): \(name)=\(target) is larger than the source model's \(source); a target must be at most the source in every dimension")
            }
        }
        let G = c.groupSize
        guard kvHeads > 0, heads == kvHeads * G else {
            throw ShearError("\(flag): heads=\(heads) with kv-heads=\(kvHeads) are not whole key/value groups: the source has \(c.numAttentionHeads) query heads on \(c.numKeyValueHeads) key/value heads (\(G) per group), so heads must be kv-heads × \(G)")
        }
    }

    /// The shape as `LlamaShape` (uniform layers) on the source's vocabulary, head width and tying.
    public func llamaShape(source c: LlamaConfig) -> LlamaShape {
        LlamaShape(vocabSize: c.vocabSize, hiddenSize: hidden, headDim: c.headDim, groupSize: c.groupSize,
                   layers: Array(repeating: LlamaLayerShape(kvHeads: kvHeads, ffnWidth: ffn), count: layers),
                   tiedEmbeddings: c.tieWordEmbeddings)
    }

    /// The config of a model of this shape, otherwise the source's.
    public func config(source c: LlamaConfig) -> LlamaConfig {
        var t = c
        t.numHiddenLayers = layers
        t.hiddenSize = hidden
        t.numAttentionHeads = heads
        t.numKeyValueHeads = kvHeads
        t.intermediateSize = ffn
        return t
    }

    /// `layers=…,hidden=…,heads=…,kv-heads=…,ffn=…`.
    public var text: String { "layers=\(layers),hidden=\(hidden),heads=\(heads),kv-heads=\(kvHeads),ffn=\(ffn)" }
}

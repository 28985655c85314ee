import BERT
import Foundation
import SwiftProtobuf
import Tensor

/// Why a model cannot be exported, or its file not written; one line naming the model or the path and what was
/// expected.
public struct ExportError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Writes a (dense or compact) `BertModel` with its task head as an ONNX model (opset 17, IR version 8): every
/// layer with its own shape, a sublayer with nothing left absent from the graph, dynamic batch and sequence axes.
///
/// Inputs `input_ids`, `attention_mask`, `token_type_ids` (int64 [batch, sequence]; the mask 1 for real tokens, 0
/// for padding). Outputs: `logits` [batch, classes] (classification, or [batch, 1] regression), `start_logits` and
/// `end_logits` [batch, sequence] (span), or `last_hidden_state` [batch, sequence, hidden] for an encoder without a
/// head. The graph computes what the training-path forward computes (`BertModel.callAsFunction` in inference mode):
/// the padding keys get −10000 added to their scores, GELU is the exact erf form, LayerNorm runs over the model's
/// own (possibly pruned) hidden width. For a sequence-level head it computes, as the runtime does, only the [CLS]
/// row after the keys and values of the last attention layer (the rows the head never reads are not computed).
///
/// Config and labels travel in the model's `metadata_props` (`cofi.config`: config.json as cofi writes it, with
/// the compact block; `id2label`), so an ONNX Runtime user can name the classes.
public enum ONNXExporter {
    /// The ONNX operator set the graph uses (LayerNormalization needs 17).
    public static let opset: Int64 = 17
    /// The IR version of opset 17 (ONNX 1.12).
    public static let irVersion: Int64 = 8
    /// Protocol buffers cannot hold a message of 2 GiB or more (weights would need ONNX's external data).
    public static let sizeLimit = Int(Int32.max)

    /// The ONNX model of `model`; `name` becomes the graph's name.
    public static func model(_ model: BertModel, name: String) throws -> Onnx_ModelProto {
        let config = model.config
        guard config.hiddenAct == "gelu" else {
            throw ExportError("hidden_act '\(config.hiddenAct)' has no ONNX translation here (expected 'gelu')")
        }
        let parameters = model.namedParameters.reduce(0) { $0 + $1.1.value.scalars.count }
        guard parameters * 4 < sizeLimit - (64 << 20) else {
            throw ExportError("the model's \(parameters) parameters (\(parameters * 4 >> 20) MiB) do not fit one ONNX "
                              + "file (protocol buffers stop at 2 GiB; external weight files are not written)")
        }
        var g = GraphBuilder()
        let dims = ["batch", "sequence"]
        for input in ["input_ids", "attention_mask", "token_type_ids"] {
            g.graph.input.append(.tensor(input, type: .int64, dims: dims))
        }

        // Embeddings: word + position (the first `sequence` rows) + token type, then LayerNorm.
        let emb = model.embeddings
        let word = g.gather(g.weight("embeddings.word_embeddings.weight", emb.wordEmbeddings), "input_ids")
        let length = g.node("Shape", ["input_ids"], attributes: [.int("start", 1), .int("end", 2)])
        let positions = g.node("Slice", [g.weight("embeddings.position_embeddings.weight", emb.positionEmbeddings),
                                         g.int64s([0]), length, g.int64s([0])])
        let types = g.gather(g.weight("embeddings.token_type_embeddings.weight", emb.tokenTypeEmbeddings), "token_type_ids")
        var x = g.node("Add", [g.node("Add", [word, positions]), types])
        x = g.layerNorm(x, emb.layerNorm, prefix: "embeddings.LayerNorm", eps: config.layerNormEps)

        // The additive mask: (1 − mask)·(−10000), [batch, 1, 1, sequence].
        let mask = g.node("Cast", ["attention_mask"], attributes: [.int("to", Int64(Onnx_TensorProto.DataType.float.rawValue))])
        let padding = g.node("Sub", [g.float(1), mask])
        let additive = g.node("Unsqueeze", [g.node("Mul", [padding, g.float(-10000)]), g.int64s([1, 2])])

        // The [CLS] cut: a sequence-level head reads only the first row, so after the keys and values of the last
        // attention layer only that row is computed (none at all: right after the embeddings).
        let pooled = model.task?.usesPooler ?? false
        let lastAttention = model.layers.lastIndex { $0.attention != nil }
        func cutToFirstRow(_ x: String) -> String {
            g.node("Slice", [x, g.int64s([0]), g.int64s([1]), g.int64s([1])])
        }
        if pooled && lastAttention == nil {
            x = cutToFirstRow(x)
        }

        let headDim = model.shape.headDim
        for (l, layer) in model.layers.enumerated() {
            let p = "encoder.layer.\(l)."
            if let att = layer.attention {
                let queries = pooled && l == lastAttention ? cutToFirstRow(x) : x
                let heads = Int64(att.heads), dh = Int64(headDim)
                func split(_ h: String, keysLast: Bool) -> String {  // [B, T, n·dh] → [B, n, T, dh] or [B, n, dh, T]
                    let r = g.node("Reshape", [h, g.int64s([0, 0, heads, dh])])
                    return g.node("Transpose", [r], attributes: [.ints("perm", keysLast ? [0, 2, 3, 1] : [0, 2, 1, 3])])
                }
                let q = split(g.linear(queries, att.query, prefix: p + "attention.self.query"), keysLast: false)
                let k = split(g.linear(x, att.key, prefix: p + "attention.self.key"), keysLast: true)
                let v = split(g.linear(x, att.value, prefix: p + "attention.self.value"), keysLast: false)
                let scores = g.node("Add", [g.node("Mul", [g.node("MatMul", [q, k]), g.float(1 / Float(headDim).squareRoot())]),
                                            additive])
                let probabilities = g.node("Softmax", [scores], attributes: [.int("axis", -1)])
                let context = g.node("Transpose", [g.node("MatMul", [probabilities, v])], attributes: [.ints("perm", [0, 2, 1, 3])])
                let merged = g.node("Reshape", [context, g.int64s([0, 0, heads * dh])])
                let out = g.linear(merged, att.output, prefix: p + "attention.output.dense")
                x = g.layerNorm(g.node("Add", [out, queries]), att.layerNorm, prefix: p + "attention.output.LayerNorm",
                                eps: config.layerNormEps)
            }
            if let ffn = layer.feedForward {
                let h = g.linear(x, ffn.intermediate, prefix: p + "intermediate.dense")
                // GELU, exact: 0.5·h·(1 + erf(h/√2)).
                let erf = g.node("Erf", [g.node("Mul", [h, g.float(Float(0.5).squareRoot())])])
                let gelu = g.node("Mul", [g.node("Mul", [h, g.node("Add", [erf, g.float(1)])]), g.float(0.5)])
                let out = g.linear(gelu, ffn.output, prefix: p + "output.dense")
                x = g.layerNorm(g.node("Add", [out, x]), ffn.layerNorm, prefix: p + "output.LayerNorm", eps: config.layerNormEps)
            }
        }

        switch model.task {
        case nil:
            if let pooler = model.pooler {  // as transformers' BertModel: pooler_output = tanh(dense(first row))
                let first = g.node("Gather", [x, g.int64Scalar(0)], attributes: [.int("axis", 1)])
                g.rename(g.node("Tanh", [g.linear(first, pooler, prefix: "pooler.dense")]), to: "pooler_output")
            }
            g.rename(x, to: "last_hidden_state")
            g.graph.output.append(.tensor("last_hidden_state", type: .float, dims: dims, model.shape.hiddenSize))
            if let pooler = model.pooler {
                g.graph.output.append(.tensor("pooler_output", type: .float, dims: [.param("batch"), .value(pooler.outFeatures)]))
            }
        case .some(let task) where task.usesPooler:
            guard let pooler = model.pooler, let head = model.head else {
                throw ExportError("a \(task) head without its pooler or classifier weights")
            }
            let first = g.node("Squeeze", [x, g.int64s([1])])
            let pooledOut = g.node("Tanh", [g.linear(first, pooler, prefix: "pooler.dense")])
            g.rename(g.linear(pooledOut, head, prefix: "classifier"), to: "logits")
            g.graph.output.append(.tensor("logits", type: .float, dims: [.param("batch"), .value(head.outFeatures)]))
        case .some:
            guard let head = model.head else { throw ExportError("a span head without its qa_outputs weights") }
            let logits = g.linear(x, head, prefix: "qa_outputs")  // [B, T, 2]
            for (i, output) in ["start_logits", "end_logits"].enumerated() {
                g.rename(g.node("Gather", [logits, g.int64Scalar(Int64(i))], attributes: [.int("axis", 2)]), to: output)
                g.graph.output.append(.tensor(output, type: .float, dims: dims))
            }
        }

        g.graph.name = name
        var m = Onnx_ModelProto()
        m.irVersion = irVersion
        m.producerName = "cofi"
        m.producerVersion = "1"
        m.domain = "cofi"
        m.modelVersion = 1
        m.docString = "BERT-family model exported by cofi (per-layer shapes: \(describe(model.shape)))"
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = Self.opset
        m.opsetImport = [opset]
        m.graph = g.graph
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var props = [("cofi.config", String(decoding: try encoder.encode(config.describingHead(model.task)), as: UTF8.self))]
        if case .classification(let n) = model.task {
            let names = config.labelNames ?? (0..<n).map { "LABEL_\($0)" }
            let id2label = Dictionary(uniqueKeysWithValues: names.enumerated().map { ("\($0.offset)", $0.element) })
            props.append(("id2label", String(decoding: try encoder.encode(id2label), as: UTF8.self)))
        }
        m.metadataProps = props.map { var e = Onnx_StringStringEntryProto(); e.key = $0.0; e.value = $0.1; return e }
        return m
    }

    /// "heads 12/12/…, FFN 1536/…, hidden 384".
    public static func describe(_ s: BertShape) -> String {
        "heads " + s.layers.map { "\($0.heads)" }.joined(separator: "/") + ", FFN "
            + s.layers.map { "\($0.ffnWidth)" }.joined(separator: "/") + ", hidden \(s.hiddenSize)"
    }

    /// Serializes `model` and writes it to `url` atomically (a temporary file beside it, then a rename); the error
    /// names the path.
    public static func write(_ model: BertModel, to url: URL) throws {
        let proto = try Self.model(model, name: url.deletingPathExtension().lastPathComponent)
        let bytes: Data
        do { bytes = try proto.serializedBytes() } catch {
            throw ExportError("could not serialize the ONNX model: \(error)")
        }
        let directory = url.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ExportError("\(url.path): cannot write: the folder \(directory.path) does not exist")
        }
        let staging = directory.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
        do {
            try bytes.write(to: staging)
        } catch {
            throw ExportError("\(url.path): cannot write: \(error.localizedDescription)")
        }
        guard rename(staging.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: staging)
            throw ExportError("\(url.path): cannot write: \(reason)")
        }
    }
}

/// Builds an ONNX graph node by node: unique value names, weights as initializers under their checkpoint names.
struct GraphBuilder {
    var graph = Onnx_GraphProto()
    private var counter = 0

    private mutating func fresh(_ op: String) -> String {
        counter += 1
        return "\(op)_\(counter)"
    }

    /// Adds a node of `op` and returns its (single) output's name.
    @discardableResult
    mutating func node(_ op: String, _ inputs: [String], attributes: [Onnx_AttributeProto] = []) -> String {
        let out = fresh(op)
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = out
        n.input = inputs
        n.output = [out]
        n.attribute = attributes
        graph.node.append(n)
        return out
    }

    /// Calls `value` `name` (a graph output) in the node that makes it and in every node that reads it.
    mutating func rename(_ value: String, to name: String) {
        precondition(graph.node.contains { $0.output.contains(value) }, "no node makes \(value)")
        for i in graph.node.indices {
            graph.node[i].output = graph.node[i].output.map { $0 == value ? name : $0 }
            graph.node[i].input = graph.node[i].input.map { $0 == value ? name : $0 }
        }
    }

    /// A float initializer named `name` holding `tensor` (little-endian raw data).
    mutating func initializer(_ name: String, _ tensor: Tensor) -> String {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = tensor.shape.map(Int64.init)
        t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        t.rawData = tensor.scalars.withUnsafeBufferPointer { buffer in
            Data(buffer: UnsafeBufferPointer(start: UnsafeRawPointer(buffer.baseAddress!)
                .assumingMemoryBound(to: UInt8.self), count: buffer.count * 4))
        }
        #if _endian(big)
        #error("ONNX raw data is little-endian")
        #endif
        graph.initializer.append(t)
        return name
    }

    mutating func weight(_ name: String, _ v: Variable) -> String { initializer(name, v.value) }

    mutating func float(_ value: Float) -> String { initializer(fresh("const"), Tensor(scalar: value)) }

    mutating func int64s(_ values: [Int64]) -> String { int64Tensor(values, dims: [Int64(values.count)]) }

    mutating func int64Scalar(_ value: Int64) -> String { int64Tensor([value], dims: []) }

    private mutating func int64Tensor(_ values: [Int64], dims: [Int64]) -> String {
        var t = Onnx_TensorProto()
        t.name = fresh("const")
        t.dims = dims
        t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        t.int64Data = values
        graph.initializer.append(t)
        return t.name
    }

    mutating func gather(_ table: String, _ ids: String) -> String { node("Gather", [table, ids]) }

    /// x·Wᵀ + b: the weight stored transposed ([in, out]) so the product is a plain MatMul.
    mutating func linear(_ x: String, _ l: Linear, prefix: String) -> String {
        let w = initializer(prefix + ".weight", Self.transposed(l.weight.value))
        let b = initializer(prefix + ".bias", l.bias.value)
        return node("Add", [node("MatMul", [x, w]), b])
    }

    /// [out, in] → [in, out].
    static func transposed(_ w: Tensor) -> Tensor {
        let rows = w.shape[0], cols = w.shape[1]
        return Tensor(shape: [cols, rows]) { (out: UnsafeMutableBufferPointer<Float>) in
            w.scalars.withUnsafeBufferPointer { src in
                for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = src[r * cols + c] } }
            }
        }
    }

    mutating func layerNorm(_ x: String, _ n: LayerNormWeights, prefix: String, eps: Double) -> String {
        node("LayerNormalization", [x, weight(prefix + ".weight", n.weight), weight(prefix + ".bias", n.bias)],
             attributes: [.int("axis", -1), .float("epsilon", Float(eps))])
    }
}

extension Onnx_AttributeProto {
    static func int(_ name: String, _ value: Int64) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .int
        a.i = value
        return a
    }

    static func ints(_ name: String, _ values: [Int64]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .ints
        a.ints = values
        return a
    }

    static func float(_ name: String, _ value: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .float
        a.f = value
        return a
    }
}

/// A dimension of a graph input or output: named (dynamic) or fixed.
enum Dimension {
    case param(String)
    case value(Int)
}

extension Onnx_ValueInfoProto {
    static func tensor(_ name: String, type: Onnx_TensorProto.DataType, dims: [String]) -> Onnx_ValueInfoProto {
        tensor(name, type: type, dims: dims.map { .param($0) })
    }

    static func tensor(_ name: String, type: Onnx_TensorProto.DataType, dims: [String], _ last: Int) -> Onnx_ValueInfoProto {
        tensor(name, type: type, dims: dims.map { .param($0) } + [.value(last)])
    }

    static func tensor(_ name: String, type: Onnx_TensorProto.DataType, dims: [Dimension]) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = Int32(type.rawValue)
        var shape = Onnx_TensorShapeProto()
        shape.dim = dims.map {
            var d = Onnx_TensorShapeProto.Dimension()
            switch $0 {
            case .param(let p): d.dimParam = p
            case .value(let n): d.dimValue = Int64(n)
            }
            return d
        }
        t.shape = shape
        var type = Onnx_TypeProto()
        type.tensorType = t
        v.type = type
        return v
    }
}

import ArgumentParser
import BERT
import Foundation

/// `cofi inspect MODEL_DIR`: what a checkpoint holds — its config, the shape of every layer, and its size.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model's config, per-layer shapes, parameter counts and prunable size.",
        discussion: """
            MODEL_DIR holds config.json and model.safetensors (Hugging Face layout). Per-layer shapes are read \
            from the tensors, so pruned (compact) checkpoints show their real shape.
            The prunable size M counts the encoder's linear weights and biases (cofi-spec §3), for the dense \
            shape of config.json; target sparsities refer to it.
            """)

    @Argument(help: "Directory with config.json and model.safetensors.")
    var modelDir: String

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        let dir = URL(fileURLWithPath: modelDir)
        let model: BertModel
        do { model = try BertModel.load(directory: dir) } catch { throw UserError(description: "\(error)") }
        let report = InspectReport(model: model)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
        } else {
            print(report.text(directory: dir.path))
        }
    }
}

/// The facts `inspect` prints, computed from the loaded model.
struct InspectReport: Encodable {
    struct Layer: Encodable {
        let index: Int, heads: Int, ffnWidth: Int, attentionParameters: Int, ffnParameters: Int
    }
    let config: BertConfig
    let hiddenSize: Int
    let headDim: Int
    let layers: [Layer]
    let task: String
    let totalParameters: Int
    let parametersWithoutEmbeddings: Int
    let encoderParameters: Int
    let prunableParameters: Int
    let prunableSizeM: Int
    let sparsityVsM: Double

    init(model: BertModel) {
        let shape = model.shape
        config = model.config
        hiddenSize = shape.hiddenSize
        headDim = shape.headDim
        layers = shape.layers.enumerated().map { l, s in
            Layer(index: l, heads: s.heads, ffnWidth: s.ffnWidth,
                  attentionParameters: shape.attentionPrunableParameters(layer: l),
                  ffnParameters: shape.ffnPrunableParameters(layer: l))
        }
        switch model.task {
        case .classification(let n)?: task = "classification (\(n) labels)"
        case .regression?: task = "regression"
        case .span?: task = "span extraction (start/end)"
        case nil: task = "none (encoder only)"
        }
        totalParameters = model.namedParameters.reduce(0) { $0 + $1.1.value.count }
        parametersWithoutEmbeddings = totalParameters - shape.embeddingParameters
        encoderParameters = shape.encoderParameters
        prunableParameters = shape.prunableParameters
        prunableSizeM = BertShape(config: model.config).prunableParameters
        sparsityVsM = 1 - Double(prunableParameters) / Double(max(prunableSizeM, 1))
    }

    func text(directory: String) -> String {
        let c = config
        func n(_ x: Int) -> String {
            let s = String(x)
            var out = ""
            for (i, ch) in s.reversed().enumerated() { if i > 0 && i % 3 == 0 { out.append(",") }; out.append(ch) }
            return String(out.reversed())
        }
        var lines = [
            "model: \(directory)",
            "config.json: \(c.modelType ?? "bert"), \(c.numHiddenLayers) layers, hidden \(c.hiddenSize), \(c.numAttentionHeads) heads × \(c.headDim), FFN \(c.intermediateSize), vocab \(c.vocabSize), max positions \(c.maxPositionEmbeddings), token types \(c.typeVocabSize)",
            "             act \(c.hiddenAct), LayerNorm eps \(c.layerNormEps), dropout hidden \(c.hiddenDropoutProb) / attention \(c.attentionProbsDropoutProb)",
            "head: \(task)",
            "hidden width: \(hiddenSize) (head width \(headDim))",
            "",
            "layer  heads  FFN width  hidden  attention params  FFN params",
        ]
        for l in layers {
            func pad(_ s: String, _ w: Int) -> String { String(repeating: " ", count: max(0, w - s.count)) + s }
            lines.append([pad("\(l.index)", 5), pad("\(l.heads)", 5), pad("\(l.ffnWidth)", 9), pad("\(hiddenSize)", 6),
                          pad(n(l.attentionParameters), 16), pad(n(l.ffnParameters), 10)].joined(separator: "  "))
        }
        lines += [
            "",
            "parameters, all:                   \(n(totalParameters))",
            "parameters without embeddings:     \(n(parametersWithoutEmbeddings))",
            "encoder layers (LayerNorm incl.):  \(n(encoderParameters))",
            "prunable parameters present:       \(n(prunableParameters))",
            "prunable size M (dense config):    \(n(prunableSizeM))",
            String(format: "sparsity relative to M:            %.4f", sparsityVsM),
        ]
        return lines.joined(separator: "\n")
    }
}

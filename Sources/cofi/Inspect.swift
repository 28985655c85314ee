import ArgumentParser
import BERT
import Foundation
import GGUF
import Platform
import Tensor

/// `cofi inspect MODEL_DIR`: what a checkpoint holds — its config, the shape of every layer, and its size;
/// `cofi inspect FILE.gguf`: a GGUF file's metadata and tensor table (`GGUFFile.summary`).
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model's config, per-layer shapes, parameter counts and prunable size, or a GGUF file's contents.",
        discussion: """
            MODEL_DIR holds config.json and model.safetensors (Hugging Face layout). Per-layer shapes are read \
            from the tensors, so pruned (compact) checkpoints show their real shape.
            A file ending in .gguf (llama.cpp's format, versions 2 and 3) shows its metadata and every tensor's \
            type, dimensions (GGUF order), size and offset instead.
            The prunable size M counts the encoder's linear weights and biases (cofi-spec §3), for the dense \
            shape of config.json; target sparsities refer to it.
            """)

    @Argument(help: "Directory with config.json and model.safetensors, or a .gguf file.")
    var modelDir: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Flag(help: "Instead of a model: the processor, what this build needs of it, and the kernel family the products run on (and why).")
    var system = false

    func validate() throws {
        guard (modelDir == nil) == system else {
            throw ValidationError(system ? "give either MODEL_DIR or --system, not both" : "give MODEL_DIR (or --system)")
        }
    }

    func run() throws {
        if system { return printSystem() }
        if modelDir!.hasSuffix(".gguf") {
            guard !json else { throw UserError(description: "--json is not available for GGUF files yet") }
            do { print(try GGUFFile(contentsOf: URL(fileURLWithPath: modelDir!)).summary()) } catch {
                throw UserError(description: "\(error)")
            }
            return
        }
        let dir = URL(fileURLWithPath: modelDir!)
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

extension Inspect {
    /// `cofi inspect --system`.
    func printSystem() {
        let selection = KernelFamily.selected
        let relevant = ["sse4_2", "avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "movbe", "abm", "avx512f", "avx512bw",
                        "avx512cd", "avx512dq", "avx512vl", "avx512_bf16", "amx_tile", "asimd", "sve"]
        let present = relevant.filter { Processor.flags.contains($0) }
        #if MPI
        let mpi = true
        #else
        let mpi = false
        #endif
        #if DEBUG
        let build = "debug"
        #else
        let build = "release"
        #endif
        let fields: [(String, Any)] = [
            ("processor", Processor.modelName), ("architecture", Processor.architecture),
            ("features", present), ("build", build), ("build_requires", Processor.buildFeatures.sorted()),
            ("kernel_family", selection.family.rawValue), ("kernel_reason", selection.reason),
            ("available_families", KernelFamily.available.map(\.rawValue)),
            ("unavailable", Dictionary(uniqueKeysWithValues: KernelFamily.allCases.compactMap { f in
                KernelFamily.unavailability(f).map { (f.rawValue, $0) } })),
            ("threads", Parallel.workers), ("mpi", mpi),
        ]
        if json {
            let object = Dictionary(uniqueKeysWithValues: fields.map { ($0.0, $0.1) })
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let needs = Processor.buildFeatures.isEmpty ? "nothing beyond the architecture's baseline"
            : Processor.buildFeatures.sorted().joined(separator: " ") + " (x86-64-v3)"
        print("""
            processor       \(Processor.modelName) (\(Processor.architecture))
            features        \(present.isEmpty ? "(none read)" : present.joined(separator: " "))
            build           \(build); its SIMD code needs \(needs)
            kernel family   \(selection.family.rawValue): \(selection.reason)
            available       \(KernelFamily.available.map(\.rawValue).joined(separator: ", "))\(KernelFamily.allCases
                .compactMap { f in KernelFamily.unavailability(f).map { "\n  not \(f.rawValue): \($0)" } }.joined())
            threads         \(Parallel.workers) (COFI_THREADS, or --threads where a command has it)
            MPI             \(mpi ? "built in (mpirun -np N cofi finetune|prune …)" : "not built in (swift build -c release --traits MPI)")
            """)
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

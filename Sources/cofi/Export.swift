import ArgumentParser
import BERT
import ONNXExport
import Foundation
import Runtime

/// `cofi export --model DIR --onnx FILE`: the model with its task head as an ONNX graph.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a model (dense or compact) with its task head as an ONNX file for ONNX Runtime and other runtimes.",
        discussion: """
            The graph (opset \(ONNXExporter.opset)) keeps every layer's own shape: a pruned layer has its own number \
            of heads and FFN units, and a sublayer with nothing left is absent. Inputs input_ids, attention_mask and \
            token_type_ids (int64 [batch, sequence], dynamic axes); outputs logits [batch, classes] (classification, \
            regression), start_logits and end_logits [batch, sequence] (span), or last_hidden_state for a model \
            without a head. The label names and config.json travel in the model's metadata (id2label, cofi.config). \
            Tokenize with the model directory's vocab.txt or tokenizer.json, as for `cofi predict`.
            """)

    @Option(help: "Model directory (a cofi finetune output's best/, a cofi prune output's final/, or a Hugging Face BERT directory).")
    var model: String

    @Option(help: "The ONNX file to write (replaced atomically if it exists).")
    var onnx: String

    @Flag(help: "Load a model whose weights hold NaN or infinities (refused by default).")
    var allowNonFinite = false

    func run() throws {
        let directory = URL(fileURLWithPath: model)
        let out = URL(fileURLWithPath: onnx)
        let loaded: BertModel
        do {
            try ModelDirectory.check(directory)
            loaded = try BertModel.load(directory: directory, options: ModelLoadOptions(allowNonFiniteWeights: allowNonFinite))
        } catch { throw UserError(description: "\(error)") }
        let started = Date()
        do { try ONNXExporter.write(loaded, to: out) } catch { throw UserError(description: "\(error)") }
        let size = (try? FileManager.default.attributesOfItem(atPath: out.path)[.size] as? Int) ?? 0
        let head = loaded.task.map { "\($0)" } ?? "no head (last_hidden_state)"
        print("wrote \(out.path): \(String(format: "%.1f", Double(size) / 1_048_576)) MiB, opset \(ONNXExporter.opset), "
              + "\(loaded.layers.count) layers (\(ONNXExporter.describe(loaded.shape))), head: \(head), "
              + String(format: "%.1f s", Date().timeIntervalSince(started)))
    }
}

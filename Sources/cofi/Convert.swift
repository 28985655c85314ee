import ArgumentParser
import Foundation
import Generation

/// `cofi convert --model FILE.gguf --out DIR`: a GGUF decoder model as a Hugging Face directory.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a GGUF decoder model (llama architecture) to a Hugging Face LlamaForCausalLM directory.",
        discussion: """
            Writes config.json, model.safetensors (float32: quantised tensors are dequantised), tokenizer.json, \
            tokenizer_config.json (with the chat template) and generation_config.json, which transformers' \
            AutoModelForCausalLM / AutoTokenizer and cofi read. Q and K are un-permuted to Hugging Face's layout.
            """)

    @Option(help: "The .gguf file.")
    var model: String

    @Option(help: "The directory to write (created).")
    var out: String

    func run() throws {
        do {
            let lm = try LanguageModel.open(URL(fileURLWithPath: model))
            try lm.saveHuggingFace(to: URL(fileURLWithPath: out))
            print("wrote \(out): \(lm.config.numHiddenLayers) layers, vocabulary \(lm.config.vocabSize), \(lm.model.namedParameters.count) tensors")
        } catch {
            throw UserError(description: "\(error)")
        }
    }
}

import ArgumentParser
import Foundation
import Generation

/// `cofi convert --model FILE.gguf --out DIR`: a GGUF decoder model as a Hugging Face directory;
/// `cofi convert --model DIR --gguf FILE.gguf`: the way back (float32).
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a decoder model between GGUF (llama architecture) and a Hugging Face LlamaForCausalLM directory.",
        discussion: """
            Writes config.json, model.safetensors (float32: quantised tensors are dequantised), tokenizer.json, \
            tokenizer_config.json (with the chat template) and generation_config.json, which transformers' \
            AutoModelForCausalLM / AutoTokenizer and cofi read. Q and K are un-permuted to Hugging Face's layout.
            With --gguf instead of --out: a GGUF v3 file with float32 tensors, the llama.* config keys, the \
            tokenizer (tokenizer.ggml.*, the chat template) and Q and K permuted as llama.cpp's converter does.
            """)

    @Option(help: "The .gguf file (or, with --gguf, a Hugging Face directory or .gguf file).")
    var model: String

    @Option(help: "The Hugging Face directory to write (created).")
    var out: String?

    @Option(help: "The GGUF file to write (float32).")
    var gguf: String?

    func validate() throws {
        guard (out == nil) != (gguf == nil) else { throw ValidationError("give one of --out DIR or --gguf FILE") }
    }

    func run() throws {
        do {
            let lm = try LanguageModel.open(URL(fileURLWithPath: model))
            let target: String
            if let out {
                try lm.saveHuggingFace(to: URL(fileURLWithPath: out))
                target = out
            } else {
                try lm.saveGGUF(to: URL(fileURLWithPath: gguf!))
                target = gguf!
            }
            print("wrote \(target): \(lm.config.numHiddenLayers) layers, vocabulary \(lm.config.vocabSize), \(lm.model.namedParameters.count) tensors")
        } catch {
            throw UserError(description: "\(error)")
        }
    }
}

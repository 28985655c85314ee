import ArgumentParser
import Formats
import Foundation
import Generation

/// `cofi generate --model FILE_OR_DIR --prompt TEXT`: text from a decoder language model, streamed as it comes.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text with a decoder language model (a GGUF file or a Hugging Face LlamaForCausalLM directory).",
        discussion: """
            The new text is printed to stdout as it is generated (a character split across tokens prints once \
            whole); the speed (prompt tokens/s, generation tokens/s) goes to stderr at the end. Greedy unless \
            --temperature is above 0; then tokens are drawn from the smallest set whose probability reaches --top-p, \
            with --seed. Generation stops at the end-of-sequence token, after --max-tokens, or when the model's \
            context is full. --chat wraps the prompt in the model's chat template (ChatML only), as the user's turn \
            after --system (or the template's default system message), and asks for the assistant's turn.
            """)

    @Option(help: "A .gguf file or a Hugging Face directory (config.json, model.safetensors, tokenizer.json).")
    var model: String

    @Option(help: "The prompt text.")
    var prompt: String

    @Option(name: .customLong("max-tokens"), help: "The most new tokens.")
    var maxTokens = 64

    @Option(help: "Sampling temperature; 0 is greedy.")
    var temperature = 0.0

    @Option(name: .customLong("top-p"), help: "Nucleus sampling: keep the most likely tokens up to this probability.")
    var topP = 1.0

    @Option(help: "Seed of the sampling.")
    var seed: UInt64 = 0

    @Flag(help: "Render the prompt with the model's chat template (ChatML).")
    var chat = false

    @Option(help: "The system message with --chat.")
    var system: String?

    @Flag(name: .customLong("ignore-eos"), help: "Do not stop at the end-of-sequence token (speed measurements).")
    var ignoreEOS = false

    @Flag(help: "Print one JSON object at the end (prompt and generated ids, text, speed) instead of streaming the text.")
    var json = false

    @Option(name: .customLong("dump-logits"), help: "Write the logits of every prompt position to this file (float32, [tokens, vocab], row-major) and generate nothing.")
    var dumpLogits: String?

    func validate() throws {
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens is \(maxTokens); expected at least 1") }
        guard temperature >= 0, temperature.isFinite else { throw ValidationError("--temperature is \(temperature); expected 0 or more") }
        guard topP > 0, topP <= 1 else { throw ValidationError("--top-p is \(topP); expected a value in (0, 1]") }
        guard !prompt.isEmpty else { throw ValidationError("--prompt is empty") }
        if system != nil && !chat { throw ValidationError("--system needs --chat") }
    }

    func run() throws {
        do {
            let lm = try LanguageModel.open(URL(fileURLWithPath: model))
            var text = prompt
            if chat {
                var messages = [ChatMessage(role: "user", content: prompt)]
                if let system { messages.insert(ChatMessage(role: "system", content: system), at: 0) }
                text = try ChatTemplate.render(messages, template: lm.tokenizer.chatTemplate)
            }
            let ids = lm.tokenizer.encodeIDs(text)
            if let dumpLogits {
                let logits = try lm.promptLogits(ids)
                try logits.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dumpLogits)) }
                print(JSON.object([("prompt_ids", ids), ("vocab_size", lm.config.vocabSize)]))
                return
            }
            let options = GenerationOptions(maxNewTokens: maxTokens, temperature: temperature, topP: topP, seed: seed,
                                            stopAtEOS: !ignoreEOS)
            let result = try lm.generate(promptIDs: ids, options: options) { piece in
                guard !json else { return }
                FileHandle.standardOutput.write(Data(piece.utf8))
            }
            if json {
                print(JSON.object([
                    ("prompt_ids", result.promptIDs), ("generated_ids", result.generatedIDs), ("text", result.text),
                    ("stop", result.stopReason.rawValue), ("prompt_tokens_per_s", result.promptTokensPerSecond),
                    ("generation_tokens_per_s", result.generationTokensPerSecond),
                ]))
            } else {
                FileHandle.standardOutput.write(Data("\n".utf8))
            }
            let speed = String(format: "prompt: %d tokens, %.1f tokens/s; generated: %d tokens, %.1f tokens/s (stop: %@)\n",
                               ids.count, result.promptTokensPerSecond, result.generatedIDs.count,
                               result.generationTokensPerSecond, result.stopReason.rawValue)
            FileHandle.standardError.write(Data(speed.utf8))
        } catch let error as ValidationError {
            throw error
        } catch {
            throw UserError(description: "\(error)")
        }
    }
}

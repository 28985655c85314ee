import ArgumentParser
import Formats
import Foundation
import Generation

/// `cofi perplexity --model FILE_OR_DIR --text FILE`: how well a decoder language model predicts a text.
struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "The perplexity of a decoder language model on a UTF-8 text file, with sliding windows.",
        discussion: """
            As in Hugging Face's perplexity guide: windows of --window tokens start every --stride tokens; each \
            window scores only the tokens after the previous window's end, so every token but the first is scored \
            once, with at least window − stride tokens of context after the first window. Prints the mean negative \
            log-likelihood (nats), the perplexity, the tokens scored and tokens/s; a progress line goes to stderr.
            """)

    @Option(help: "A .gguf file or a Hugging Face directory (config.json, model.safetensors, tokenizer.json).")
    var model: String

    @Option(help: "The text file (UTF-8).")
    var text: String

    @Option(help: "Tokens per window (at most the model's context).")
    var window = 1024

    @Option(help: "Tokens between window starts (1…window).")
    var stride = 512

    @Flag(name: .customLong("json"), help: "Print JSON lines: one per window as it finishes, then the result.")
    var jsonLines = false

    func run() throws {
        do {
            let body = try TextFile.read(URL(fileURLWithPath: text), flag: "--text")
            let lm = try LanguageModel.open(URL(fileURLWithPath: model))
            let started = Date()
            let result = try lm.perplexity(of: body, window: window, stride: stride) { done, total in
                if jsonLines {
                    print(JSON.object([("window", done), ("windows", total),
                                       ("seconds", Date().timeIntervalSince(started))]))
                } else {
                    FileHandle.standardError.write(Data("\rperplexity: window \(done)/\(total)\(done == total ? "\n" : "")".utf8))
                }
            }
            if jsonLines {
                print(JSON.object([
                    ("tokens", result.tokens), ("mean_nll", result.meanNLL), ("perplexity", result.perplexity),
                    ("windows", result.windows), ("window", window), ("stride", stride),
                    ("seconds", result.seconds), ("tokens_per_s", result.tokensPerSecond),
                ]))
            } else {
                print(String(format: "perplexity %.4f (mean NLL %.6f nats) over %d tokens, %d windows of %d (stride %d); %.1f tokens/s",
                             result.perplexity, result.meanNLL, result.tokens, result.windows, window, stride,
                             result.tokensPerSecond))
            }
        } catch {
            throw UserError(description: "\(error)")
        }
    }
}

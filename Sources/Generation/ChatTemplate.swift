import Foundation

/// One turn of a conversation.
public struct ChatMessage: Equatable, Sendable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// The chat template, rendered for the one family cofi knows: ChatML (`<|im_start|>role\n…<|im_end|>\n`, and the
/// generation prompt `<|im_start|>assistant\n`), SmolLM2's and Qwen's. A stored template is recognised as ChatML
/// by its markers; any other template is refused rather than rendered wrongly (there is no Jinja interpreter here).
public enum ChatTemplate {
    static let start = "<|im_start|>", end = "<|im_end|>"

    /// The prompt text of `messages` (and the assistant's opening when `addGenerationPrompt`) under `template` (a
    /// model's stored Jinja template). When the conversation has no system message and the template writes a default
    /// one (SmolLM2's "You are a helpful AI assistant named SmolLM, …"), that one comes first, as the template does.
    public static func render(_ messages: [ChatMessage], template: String?, addGenerationPrompt: Bool = true) throws -> String {
        guard let template else {
            throw GenerationError("the model has no chat template (tokenizer.chat_template / chat_template); run without --chat")
        }
        guard template.contains(start), template.contains(end) else {
            throw GenerationError("the model's chat template is not ChatML (no \(start) … \(end) markers); only ChatML templates are rendered")
        }
        var turns = messages
        if turns.first?.role != "system", let system = defaultSystemMessage(template) {
            turns.insert(ChatMessage(role: "system", content: system), at: 0)
        }
        var text = turns.map { "\(start)\($0.role)\n\($0.content)\(end)\n" }.joined()
        if addGenerationPrompt { text += "\(start)assistant\n" }
        return text
    }

    /// The default system message a ChatML template writes literally (`'<|im_start|>system\n…<|im_end|>`), if any;
    /// the newline may be written as Jinja's escape `\n` or as itself.
    static func defaultSystemMessage(_ template: String) -> String? {
        for marker in ["\(start)system\\n", "\(start)system\n"] {
            guard let open = template.range(of: marker),
                  let close = template.range(of: end, range: open.upperBound..<template.endIndex) else { continue }
            let text = String(template[open.upperBound..<close.lowerBound])
            // Only a literal: a template that builds the message from variables has quotes or braces in it.
            guard !text.contains("'"), !text.contains("{"), !text.contains("\"") else { return nil }
            return text
        }
        return nil
    }
}

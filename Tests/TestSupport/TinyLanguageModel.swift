import Foundation
import Llama
import Tasks
import Tensor
import Generation

/// A tiny random LLaMA with a byte-level BPE tokenizer: the 256 byte characters, a few merges, and ChatML's markers
/// as special added tokens; the chat template is SmolLM2's.
public enum TinyLanguageModel {
    /// GPT-2's byte-to-unicode table, from its definition: printable Latin-1 bytes stand for themselves, the others
    /// take the characters from U+0100 on, in byte order.
    public static let byteCharacters: [String] = {
        var next: UInt32 = 256
        return (0..<256).map { (b: UInt32) -> String in
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            if printable { return String(Character(Unicode.Scalar(b)!)) }
            defer { next += 1 }
            return String(Character(Unicode.Scalar(next)!))
        }
    }()

    public static let chatTemplate = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

    public static func tokenizer() throws -> ByteLevelBPETokenizer {
        let merges: [(String, String)] = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ã", "©")]
        let special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        var tokens = special + byteCharacters
        tokens += merges.map { $0.0 + $0.1 }
        let added = special.enumerated().map { ByteLevelBPETokenizer.AddedToken(content: $0.element, id: $0.offset, special: true) }
        return try ByteLevelBPETokenizer(source: "tiny", tokens: tokens, merges: merges, addedTokens: added,
                                         bosTokenID: 1, eosTokenID: 2, unknownTokenID: 0, paddingTokenID: 2,
                                         chatTemplate: chatTemplate)
    }

    public static func config(vocabSize: Int) -> LlamaConfig {
        LlamaConfig(vocabSize: vocabSize, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4,
                    numKeyValueHeads: 2, headDim: 4, rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 48,
                    tieWordEmbeddings: true, bosTokenId: 1, eosTokenIds: [2], padTokenId: 2)
    }

    public static func make(seed: UInt64 = 3, tied: Bool = true) throws -> LanguageModel {
        let t = try tokenizer()
        var c = config(vocabSize: t.tokens.count)
        c.tieWordEmbeddings = tied
        return LanguageModel(model: LlamaModel.random(config: c, seed: seed, std: 0.4), tokenizer: t,
                             source: URL(fileURLWithPath: "tiny"))
    }
}

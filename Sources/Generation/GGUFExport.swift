import Foundation
import GGUF
import Llama
import Tasks
import Tensor

extension LanguageModel {
    /// The model as a GGUF file that llama.cpp's conventions and `LanguageModel.open` read: float32 tensors with
    /// GGUF names, Q and K permuted as llama.cpp's converter does (`LlamaKeys.permuteRotary`), the `llama.*` keys of
    /// the config, and the tokenizer as `tokenizer.ggml.*` (model `gpt2`, tokens, token types — control for special
    /// added tokens, user-defined for the others —, merges, special ids, `add_bos_token`) and
    /// `tokenizer.chat_template`. `tokenizer.ggml.pre` is written as `gpt2`: the split this tokenizer and
    /// transformers use.
    public func saveGGUF(to url: URL, name: String? = nil) throws {
        let c = config, t = tokenizer
        var metadata: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string("llama")), ("general.name", .string(name ?? source.deletingPathExtension().lastPathComponent)),
            ("general.file_type", .uint32(0)),  // all F32
            ("llama.block_count", .uint32(UInt32(c.numHiddenLayers))), ("llama.context_length", .uint32(UInt32(c.maxPositionEmbeddings))),
            ("llama.embedding_length", .uint32(UInt32(c.hiddenSize))), ("llama.feed_forward_length", .uint32(UInt32(c.intermediateSize))),
            ("llama.attention.head_count", .uint32(UInt32(c.numAttentionHeads))),
            ("llama.attention.head_count_kv", .uint32(UInt32(c.numKeyValueHeads))),
            ("llama.rope.freq_base", .float32(Float(c.ropeTheta))),
            ("llama.attention.layer_norm_rms_epsilon", .float32(Float(c.rmsNormEps))),
            ("llama.rope.dimension_count", .uint32(UInt32(c.headDim))), ("llama.vocab_size", .uint32(UInt32(c.vocabSize))),
            // The head width explicitly: a pruned model's hidden width need not be heads × head width.
            ("llama.attention.key_length", .uint32(UInt32(c.headDim))), ("llama.attention.value_length", .uint32(UInt32(c.headDim))),
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("gpt2")),
            ("tokenizer.ggml.tokens", .array(.string, t.tokens.map { .string($0) })),
        ]
        var types = [Int32](repeating: Int32(ByteLevelBPETokenizer.TokenType.normal.rawValue), count: t.tokens.count)
        for a in t.addedTokens { types[a.id] = Int32((a.special ? ByteLevelBPETokenizer.TokenType.control : .userDefined).rawValue) }
        metadata.append(("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0) })))
        metadata.append(("tokenizer.ggml.merges", .array(.string, t.mergeList.map { .string($0.0 + " " + $0.1) })))
        for (key, id) in [("bos", t.bosTokenID), ("eos", t.eosTokenID ?? c.eosTokenIds.first), ("unknown", t.unknownTokenID),
                          ("padding", t.paddingTokenID)] {
            if let id { metadata.append(("tokenizer.ggml.\(key)_token_id", .uint32(UInt32(id)))) }
        }
        metadata.append(("tokenizer.ggml.add_bos_token", .bool(t.addsBOS)))
        if let template = t.chatTemplate { metadata.append(("tokenizer.chat_template", .string(template))) }
        var tensors: [(name: String, tensor: Tensor)] = []
        for (hf, v) in model.namedParameters {
            guard let gguf = LlamaKeys.ggufName(huggingFace: hf) else { throw GenerationError("no GGUF name for the tensor \(hf)") }
            let rotated = hf.hasSuffix("q_proj.weight") || hf.hasSuffix("k_proj.weight")
            tensors.append((gguf, rotated ? LlamaKeys.permuteRotary(v.value, heads: v.value.shape[0] / c.headDim) : v.value))
        }
        try GGUFWriter.write(metadata: metadata, tensors: tensors, to: url)
    }
}

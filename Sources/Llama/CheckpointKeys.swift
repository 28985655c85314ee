import Tensor

/// The tensor names of a LLaMA checkpoint, in one place: Hugging Face `LlamaForCausalLM`'s state-dict names (what
/// the model's parameters carry and what safetensors files hold), and the GGUF names llama.cpp's converter gives
/// the same tensors. No other source file spells a tensor name.
public enum LlamaKeys {
    public static let embedTokens = "model.embed_tokens.weight"
    public static let finalNorm = "model.norm.weight"
    public static let lmHead = "lm_head.weight"

    /// The tensors of decoder layer l.
    public struct Layer: Sendable {
        public let prefix: String
        public init(_ l: Int) { prefix = "model.layers.\(l)." }
        public var inputNorm: String { prefix + "input_layernorm.weight" }
        public var q: String { prefix + "self_attn.q_proj.weight" }
        public var k: String { prefix + "self_attn.k_proj.weight" }
        public var v: String { prefix + "self_attn.v_proj.weight" }
        public var o: String { prefix + "self_attn.o_proj.weight" }
        public var postAttentionNorm: String { prefix + "post_attention_layernorm.weight" }
        public var gate: String { prefix + "mlp.gate_proj.weight" }
        public var up: String { prefix + "mlp.up_proj.weight" }
        public var down: String { prefix + "mlp.down_proj.weight" }
        /// The attention sublayer's tensors, then the FFN's.
        public var attention: [String] { [inputNorm, q, k, v, o] }
        public var ffn: [String] { [postAttentionNorm, gate, up, down] }
    }

    public static func layer(_ l: Int) -> Layer { Layer(l) }

    /// llama.cpp's GGUF names of the model-level tensors and of each layer tensor (after `blk.N.`).
    static let ggufGlobal: [String: String] = [
        "token_embd.weight": embedTokens, "output_norm.weight": finalNorm, "output.weight": lmHead,
    ]
    static let ggufLayer: [String: String] = [
        "attn_norm.weight": "input_layernorm.weight", "attn_q.weight": "self_attn.q_proj.weight",
        "attn_k.weight": "self_attn.k_proj.weight", "attn_v.weight": "self_attn.v_proj.weight",
        "attn_output.weight": "self_attn.o_proj.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
        "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
        "ffn_down.weight": "mlp.down_proj.weight",
    ]

    /// The Hugging Face name of a GGUF tensor (`blk.3.attn_q.weight` → `model.layers.3.self_attn.q_proj.weight`),
    /// or nil for a name LLaMA does not use (`rope_freqs.weight`, …).
    public static func huggingFaceName(gguf name: String) -> String? {
        if let global = ggufGlobal[name] { return global }
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let l = Int(parts[1]), l >= 0,
              let rest = ggufLayer[String(parts[2])] else { return nil }
        return "model.layers.\(l)." + rest
    }

    /// The GGUF name of a Hugging Face tensor name (the inverse of `huggingFaceName(gguf:)`), or nil for a name
    /// LLaMA does not use.
    public static func ggufName(huggingFace name: String) -> String? {
        if let global = ggufGlobal.first(where: { $0.value == name }) { return global.key }
        let prefix = "model.layers."
        guard name.hasPrefix(prefix) else { return nil }
        let parts = name.dropFirst(prefix.count).split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let l = Int(parts[0]), l >= 0,
              let rest = ggufLayer.first(where: { $0.value == String(parts[1]) }) else { return nil }
        return "blk.\(l).\(rest.key)"
    }

    /// llama.cpp's permutation of a Q or K weight [H·Dh, in] (the inverse of `unpermuteRotary`): GGUF row 2i + s
    /// of a head = Hugging Face row s·Dh/2 + i.
    public static func permuteRotary(_ w: Tensor, heads: Int) -> Tensor { moveRotaryRows(w, heads: heads, toGGUF: true) }

    /// Hugging Face's rows of a Q or K projection weight [H·Dh, in] that llama.cpp's converter permuted.
    ///
    /// The facts (convert_hf_to_gguf.py, `LlamaModel.permute`, applied to `q_proj` with H = the query heads and to
    /// `k_proj` with H = the KV heads): each head's Dh rows are reshaped to [2, Dh/2] and transposed to [Dh/2, 2],
    /// so GGUF row 2i + s of a head is Hugging Face row s·Dh/2 + i (s ∈ {0, 1}, i < Dh/2). That turns HF's
    /// "rotate half" pairs (i, i + Dh/2) into the adjacent pairs (2i, 2i + 1) llama.cpp's rotary kernel rotates.
    /// This function undoes it: Hugging Face row s·Dh/2 + i = GGUF row 2i + s. The other tensors are not permuted.
    public static func unpermuteRotary(_ w: Tensor, heads: Int) -> Tensor { moveRotaryRows(w, heads: heads, toGGUF: false) }

    /// Moves each head's rows between the two layouts: Hugging Face row s·Dh/2 + i ⇄ GGUF row 2i + s.
    private static func moveRotaryRows(_ w: Tensor, heads: Int, toGGUF: Bool) -> Tensor {
        precondition(w.rank == 2 && heads > 0 && w.shape[0] % (2 * heads) == 0,
                     "\(toGGUF ? "permuteRotary" : "unpermuteRotary"): \(w.shape) is not \(heads) heads of an even width")
        let rows = w.shape[0], cols = w.shape[1], Dh = rows / heads, half = Dh / 2
        return Tensor(shape: w.shape) { out in
            w.withPointer { src in
                for h in 0..<heads { for s in 0..<2 { for i in 0..<half {
                    let hf = h * Dh + s * half + i, gguf = h * Dh + 2 * i + s
                    let (to, from) = toGGUF ? (gguf, hf) : (hf, gguf)
                    (out.baseAddress! + to * cols).update(from: src + from * cols, count: cols)
                } } }
            }
        }
    }

    /// A name → tensor table with GGUF names (as a GGUF reader produces it, each weight [out, in] row-major) turned
    /// into Hugging Face names and layouts: names mapped by `huggingFaceName(gguf:)`, Q and K weights un-permuted
    /// (`unpermuteRotary`, each head `config.headDim` rows, so a pruned layer's own head count is used). Tensors LLaMA does not use are dropped.
    public static func fromGGUF(_ tensors: [String: Tensor], config: LlamaConfig) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, t) in tensors {
            guard let hf = huggingFaceName(gguf: name) else { continue }
            let rotated = hf.hasSuffix("q_proj.weight") || hf.hasSuffix("k_proj.weight")
            out[hf] = rotated ? unpermuteRotary(t, heads: t.shape[0] / config.headDim) : t
        }
        return out
    }
}

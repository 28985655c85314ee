import Foundation
import Formats
import Tensor
import XCTest
@testable import Llama

/// config.json decoding and validation (each refusal names its key), shapes and parameter counts, checkpoint
/// names, the GGUF name map and the inverse of llama.cpp's Q/K permutation, loading errors, save → load.
final class LlamaConfigTests: XCTestCase {
    /// SmolLM2-135M's config.json, as published (the fields cofi reads and a few it ignores).
    static let smolLM2 = """
    {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 0,
     "eos_token_id": 0, "hidden_act": "silu", "hidden_size": 576, "initializer_range": 0.041666666666666664,
     "intermediate_size": 1536, "is_llama_config": true, "max_position_embeddings": 8192, "model_type": "llama",
     "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3, "pretraining_tp": 1,
     "rms_norm_eps": 1e-05, "rope_interleaved": false, "rope_scaling": null, "rope_theta": 100000,
     "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.40.1", "use_cache": true,
     "vocab_size": 49152}
    """

    func decode(_ text: String) throws -> LlamaConfig {
        try LlamaConfig(json: try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)), file: "config.json")
    }

    /// The SmolLM2 config with `key` set to the JSON `value` (nil: removed).
    func variant(_ key: String, _ value: String?) throws -> LlamaConfig {
        var object = try JSONSerialization.jsonObject(with: Data(Self.smolLM2.utf8)) as! [String: Any]
        object[key] = value.map { try! JSONSerialization.jsonObject(with: Data($0.utf8), options: .fragmentsAllowed) }
        return try decode(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
    }

    func testSmolLM2() throws {
        let c = try decode(Self.smolLM2)
        XCTAssertEqual(c, LlamaConfig(vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30,
                                      numAttentionHeads: 9, numKeyValueHeads: 3, headDim: 64, rmsNormEps: 1e-5,
                                      ropeTheta: 100_000, maxPositionEmbeddings: 8192, tieWordEmbeddings: true,
                                      bosTokenId: 0, eosTokenIds: [0], padTokenId: nil))
        XCTAssertEqual(c.groupSize, 3)
        let shape = LlamaShape(config: c)
        // 134,515,008 parameters: the published count of SmolLM2-135M.
        XCTAssertEqual(shape.parameterCount, 134_515_008)
        XCTAssertEqual(try decode(c.json), c)   // written and read back
    }

    func testDefaultsAndTransformers5RopeParameters() throws {
        let c = try variant("rope_theta", nil)
        XCTAssertEqual(c.ropeTheta, 10_000)
        let d = try variant("rope_parameters", #"{"rope_type": "default", "rope_theta": 500000.0}"#)
        XCTAssertEqual(d.ropeTheta, 100_000)   // rope_theta wins when both are there
        var object = try JSONSerialization.jsonObject(with: Data(Self.smolLM2.utf8)) as! [String: Any]
        object["rope_theta"] = nil
        object["rope_parameters"] = ["rope_type": "default", "rope_theta": 500000.0]
        object["num_key_value_heads"] = nil
        object["eos_token_id"] = [0, 2]
        let e = try decode(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
        XCTAssertEqual(e.ropeTheta, 500_000)
        XCTAssertEqual(e.numKeyValueHeads, 9)
        XCTAssertEqual(e.eosTokenIds, [0, 2])
    }

    func testRefusalsNameTheKey() {
        let cases: [(String, String?, String)] = [
            ("hidden_act", #""gelu""#, "hidden_act"), ("attention_bias", "true", "attention_bias"),
            ("mlp_bias", "true", "mlp_bias"), ("rope_scaling", #"{"type": "linear", "factor": 2}"#, "rope_scaling"),
            ("rope_parameters", #"{"rope_type": "yarn"}"#, "rope_parameters.rope_type"),
            ("model_type", #""bert""#, "model_type"), ("num_key_value_heads", "2", "num_key_value_heads"),
            ("hidden_size", "0", "hidden_size"), ("vocab_size", "20000000", "vocab_size"),
            ("head_dim", "63", "head_dim"), ("rms_norm_eps", "0", "rms_norm_eps"), ("rope_theta", "1", "rope_theta"),
            ("eos_token_id", "49152", "eos_token_id"), ("hidden_size", #""576""#, "hidden_size"),
            ("num_hidden_layers", nil, "num_hidden_layers"),
        ]
        for (key, value, named) in cases {
            do {
                _ = key == "rope_parameters" ? try decodeWithout("rope_theta", key, value!) : try variant(key, value)
                XCTFail("\(key) = \(value ?? "absent") was accepted")
            } catch let e as FileFormatError {
                XCTAssertEqual(e.key, named, "\(e)")
                XCTAssertTrue(e.description.contains(named), "\(e)")
            } catch {
                XCTFail("\(error)")
            }
        }
    }

    func decodeWithout(_ removed: String, _ key: String, _ value: String) throws -> LlamaConfig {
        var object = try JSONSerialization.jsonObject(with: Data(Self.smolLM2.utf8)) as! [String: Any]
        object[removed] = nil
        object[key] = try JSONSerialization.jsonObject(with: Data(value.utf8))
        return try decode(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
    }
}

final class LlamaKeysTests: XCTestCase {
    func testGGUFNames() {
        XCTAssertEqual(LlamaKeys.huggingFaceName(gguf: "token_embd.weight"), "model.embed_tokens.weight")
        XCTAssertEqual(LlamaKeys.huggingFaceName(gguf: "output_norm.weight"), "model.norm.weight")
        XCTAssertEqual(LlamaKeys.huggingFaceName(gguf: "output.weight"), "lm_head.weight")
        XCTAssertEqual(LlamaKeys.huggingFaceName(gguf: "blk.12.attn_q.weight"), LlamaKeys.layer(12).q)
        XCTAssertEqual(LlamaKeys.huggingFaceName(gguf: "blk.0.attn_output.weight"), LlamaKeys.layer(0).o)
        XCTAssertEqual(LlamaKeys.huggingFaceName(gguf: "blk.3.ffn_norm.weight"), LlamaKeys.layer(3).postAttentionNorm)
        XCTAssertEqual(LlamaKeys.huggingFaceName(gguf: "blk.3.ffn_down.weight"), LlamaKeys.layer(3).down)
        XCTAssertNil(LlamaKeys.huggingFaceName(gguf: "rope_freqs.weight"))
        XCTAssertNil(LlamaKeys.huggingFaceName(gguf: "blk.x.attn_q.weight"))
        XCTAssertNil(LlamaKeys.huggingFaceName(gguf: "blk.1.attn_qkv.weight"))
        for name in ["token_embd.weight", "output_norm.weight", "output.weight", "blk.12.attn_q.weight", "blk.3.ffn_down.weight"] {
            XCTAssertEqual(LlamaKeys.ggufName(huggingFace: LlamaKeys.huggingFaceName(gguf: name)!), name)
        }
        XCTAssertNil(LlamaKeys.ggufName(huggingFace: "model.layers.1.self_attn.rotary_emb.inv_freq"))
    }

    /// llama.cpp's permutation, written here from its definition (reshape(H, 2, Dh/2, in).swapaxes(1, 2)), then
    /// undone.
    func testUnpermuteInvertsTheConverterPermutation() {
        let heads = 3, Dh = 8, cols = 5
        var rng = Xoshiro256(seed: 3)
        let hf = Tensor.randomNormal(shape: [heads * Dh, cols], using: &rng)
        var gguf = Tensor(zeros: hf.shape)
        for h in 0..<heads { for s in 0..<2 { for i in 0..<(Dh / 2) { for c in 0..<cols {
            // element [h, s, i] of the reshaped HF tensor lands at [h, i, s]
            gguf.scalars[((h * Dh) + i * 2 + s) * cols + c] = hf.scalars[((h * Dh) + s * Dh / 2 + i) * cols + c]
        } } } }
        XCTAssertEqual(LlamaKeys.unpermuteRotary(gguf, heads: heads), hf)
        XCTAssertEqual(LlamaKeys.permuteRotary(hf, heads: heads), gguf)
        // The permuted rows pair adjacent dims: GGUF rows 0 and 1 are HF rows 0 and Dh/2 (a rotary pair).
        XCTAssertEqual(Array(gguf.scalars[cols..<(2 * cols)]), Array(hf.scalars[(Dh / 2 * cols)..<(Dh / 2 * cols + cols)]))
    }

    func testFromGGUFBuildsTheSameModel() throws {
        let config = LlamaDecoderTests.config
        let model = LlamaModel.random(config: config, shape: LlamaDecoderTests.shape, seed: 4, std: 0.3)
        // The GGUF table of this model: GGUF names, Q and K permuted as the converter does.
        let names = Dictionary(uniqueKeysWithValues: (LlamaKeys.ggufGlobal.map { ($0.value, $0.key) }))
        var table: [String: Tensor] = [:]
        for (name, p) in model.namedParameters {
            var ggufName = names[name]
            if ggufName == nil {
                let parts = name.split(separator: ".")   // model.layers.N.rest…
                let rest = parts[3...].joined(separator: ".")
                ggufName = "blk.\(parts[2])." + LlamaKeys.ggufLayer.first { $0.value == rest }!.key
            }
            var t = p.value
            if name.hasSuffix("q_proj.weight") || name.hasSuffix("k_proj.weight") {
                t = permuteLikeLlamaCpp(t, heads: t.shape[0] / config.headDim)
            }
            table[ggufName!] = t
        }
        table["rope_freqs.weight"] = Tensor(zeros: [3])   // not LLaMA's: dropped
        let rebuilt = try LlamaModel(config: config, tensors: LlamaKeys.fromGGUF(table, config: config))
        XCTAssertEqual(rebuilt.namedParameters.map(\.0), model.namedParameters.map(\.0))
        for ((name, a), (_, b)) in zip(rebuilt.namedParameters, model.namedParameters) {
            XCTAssertEqual(a.value, b.value, name)
        }
    }

    func permuteLikeLlamaCpp(_ w: Tensor, heads: Int) -> Tensor {
        let Dh = w.shape[0] / heads, cols = w.shape[1]
        var out = Tensor(zeros: w.shape)
        for h in 0..<heads { for s in 0..<2 { for i in 0..<(Dh / 2) { for c in 0..<cols {
            out.scalars[(h * Dh + 2 * i + s) * cols + c] = w.scalars[(h * Dh + s * Dh / 2 + i) * cols + c]
        } } } }
        return out
    }
}

final class LlamaCheckpointTests: XCTestCase {
    func testSaveAndLoadRoundTrip() throws {
        let config = LlamaDecoderTests.config
        let model = LlamaModel.random(config: config, shape: LlamaDecoderTests.shape, seed: 8)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("llama-roundtrip-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try model.save(to: dir)
        let loaded = try LlamaModel.load(directory: dir)
        XCTAssertEqual(loaded.config, config)
        XCTAssertEqual(loaded.shape, model.shape)
        for ((a, x), (b, y)) in zip(loaded.namedParameters, model.namedParameters) {
            XCTAssertEqual(a, b)
            XCTAssertEqual(x.value, y.value, a)
        }
    }

    func testLoadErrorsNameTheTensor() throws {
        let config = LlamaDecoderTests.config
        let model = LlamaModel.random(config: config, seed: 8)
        let tensors = Dictionary(uniqueKeysWithValues: model.namedParameters.map { ($0.0, $0.1.value) })
        func refusal(_ edit: (inout [String: Tensor]) -> Void) -> FileFormatError? {
            var t = tensors
            edit(&t)
            do { _ = try LlamaModel(config: config, tensors: t); return nil } catch { return error as? FileFormatError }
        }
        let k = LlamaKeys.layer(1)
        XCTAssertEqual(refusal { $0[k.v] = nil }?.key, k.v)                                   // missing
        XCTAssertEqual(refusal { $0[k.up] = Tensor(zeros: [39, 24]) }?.key, k.up)              // mis-shaped
        XCTAssertEqual(refusal { $0[k.q] = Tensor(zeros: [30, 24]) }?.key, k.q)                // not whole KV groups
        XCTAssertEqual(refusal { $0[k.q] = Tensor(zeros: [72, 24]) }?.key, k.q)                // more heads than the config
        XCTAssertEqual(refusal { $0[LlamaKeys.layer(4).gate] = Tensor(zeros: [4, 24]) }?.key, LlamaKeys.layer(4).gate)
        XCTAssertEqual(refusal { $0[k.gate] = nil }?.key, k.down)                               // orphans of the FFN
        XCTAssertEqual(refusal { $0[LlamaKeys.lmHead] = Tensor(zeros: [50, 24]) }?.key, LlamaKeys.lmHead)
        XCTAssertEqual(refusal { $0[k.o]!.scalars[5] = .infinity }?.key, k.o)                  // non-finite
        XCTAssertNil(refusal { $0[LlamaKeys.lmHead] = $0[LlamaKeys.embedTokens] })              // a tied copy is fine
    }
}

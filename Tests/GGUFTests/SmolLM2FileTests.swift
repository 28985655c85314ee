import Foundation
import GGUF
import Tensor
import XCTest

/// The real SmolLM2-135M-Instruct file (fetched by `cofi fetch` into .assets/, or $COFI_ASSETS; the tests skip,
/// saying so, without it): its metadata and tensor table, and slices of a Q8_0 and two Q4_1 tensors equal to what
/// the `gguf` package dequantises (scripts/reference/make_gguf_golden.py, smollm2_slice.safetensors).
final class SmolLM2FileTests: XCTestCase {
    static var url: URL {
        let assets = ProcessInfo.processInfo.environment["COFI_ASSETS"].map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent(".assets")
        return assets.appendingPathComponent("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
    }

    func open() throws -> GGUFFile {
        guard FileManager.default.fileExists(atPath: Self.url.path) else {
            throw XCTSkip("\(Self.url.path) is missing: run `swift run cofi fetch` to test the reader on SmolLM2")
        }
        return try GGUFFile(contentsOf: Self.url)
    }

    func testMetadataAndTensorTable() throws {
        let file = try open()
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.alignment, 32)
        XCTAssertEqual(file.metadata.count, 33)
        XCTAssertEqual(file["general.architecture"], .string("llama"))
        XCTAssertEqual(file["llama.block_count"], .uint32(30))
        XCTAssertEqual(file["llama.embedding_length"], .uint32(576))
        XCTAssertEqual(file["llama.feed_forward_length"], .uint32(1536))
        XCTAssertEqual(file["llama.attention.head_count"], .uint32(9))
        XCTAssertEqual(file["llama.attention.head_count_kv"], .uint32(3))
        XCTAssertEqual(file["llama.context_length"], .uint32(8192))
        XCTAssertEqual(file["llama.rope.freq_base"], .float32(100_000))
        XCTAssertEqual(file["llama.vocab_size"], .uint32(49_152))
        XCTAssertEqual(file["tokenizer.ggml.model"], .string("gpt2"))
        XCTAssertEqual(file["tokenizer.ggml.pre"], .string("smollm"))
        XCTAssertEqual(file["tokenizer.ggml.tokens"]?.array?.count, 49_152)
        XCTAssertEqual(file["tokenizer.ggml.merges"]?.array?.count, 48_900)
        XCTAssertEqual(file.tensors.count, 272)
        var counts: [GGMLType: Int] = [:]
        for t in file.tensors { counts[t.type, default: 0] += 1 }
        XCTAssertEqual(counts, [.q4_1: 210, .f32: 61, .q8_0: 1])
        let embedding = try file.info("token_embd.weight")
        XCTAssertEqual(embedding.dimensions, [576, 49_152])
        XCTAssertEqual(embedding.shape, [49_152, 576])
        XCTAssertEqual(embedding.type, .q8_0)
        XCTAssertEqual(file.dataOffset + embedding.offset, 1_785_664)
        let end = file.tensors.map { file.dataOffset + $0.offset + $0.byteCount }.max()!
        XCTAssertEqual(end, 98_362_432, "the tensors end where the file does")
    }

    func testSlicesDequantizeAsTheGGUFPackageDoes() throws {
        let file = try open()
        let golden = try SafetensorsFile(contentsOf: Bundle.module.url(forResource: "Fixtures/smollm2_slice", withExtension: "safetensors")!)
        for name in ["token_embd.weight", "blk.0.ffn_down.weight", "blk.29.attn_q.weight"] {
            let rows = try golden.integers(name + ".rows").values
            let got = try file.rows(rows, of: name), want = try golden.tensor(name)
            XCTAssertEqual(got.shape, want.shape, name)
            let diff = got.maxAbsDifference(want)
            print("\(name) (\(try file.info(name).type.name)) rows \(rows): max |Δ| = \(diff) over \(got.scalars.count) values")
            XCTAssertEqual(diff, 0, name)
        }
        // The whole Q4_1 tensor through `tensor(_:)` agrees with the row path.
        let whole = try file.tensor("blk.0.ffn_down.weight")
        XCTAssertEqual(whole.shape, [576, 1536])
        XCTAssertEqual(Array(whole.scalars[(575 * 1536)...]), Array(try golden.tensor("blk.0.ffn_down.weight").scalars[(2 * 1536)...]))
    }
}

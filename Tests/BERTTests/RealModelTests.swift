import Foundation
import Tensor
import XCTest
@testable import BERT

/// The real pretrained all-MiniLM-L6-v2 (fetched by `cofi fetch` into .assets/, or $COFI_ASSETS).
enum RealModel {
    static var directory: URL {
        if let dir = ProcessInfo.processInfo.environment["COFI_ASSETS"] {
            return URL(fileURLWithPath: dir).appendingPathComponent("all-MiniLM-L6-v2")
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".assets/all-MiniLM-L6-v2")
    }

    static func load() throws -> BertModel {
        let dir = directory
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path) else {
            throw CheckpointError("\(dir.path): the real model is missing; run `swift run cofi fetch` first")
        }
        return try BertModel.load(directory: dir)
    }
}

final class RealModelTests: XCTestCase {
    func testMiniLMLoadsWithItsShape() throws {
        let model = try RealModel.load()
        XCTAssertEqual(model.shape.hiddenSize, 384)
        XCTAssertEqual(model.shape.layers, Array(repeating: LayerShape(heads: 12, ffnWidth: 1536), count: 6))
        XCTAssertEqual(model.shape.headDim, 32)
        XCTAssertNil(model.task, "the sentence-embedding checkpoint has no task head")
        // 22,713,728 parameters in the file, minus the 512 int64 position ids that are not weights.
        let total = model.namedParameters.reduce(0) { $0 + $1.1.value.count }
        XCTAssertEqual(total, 22_713_216)
    }

    /// Sentence embeddings equal the PyTorch fixture and the known-good values of ASSETS.md to 1e-4.
    func testMiniLMSentenceEmbeddingsMatchReference() throws {
        let model = try RealModel.load()
        let g = try GoldenFixture("minilm_reference")
        let batch = try g.batch
        let hidden = withoutGradients { () -> Tensor in
            var mode = ForwardMode.inference
            return model(batch, mode: &mode).hiddenStates.last!.value
        }
        let emb = meanPooledEmbeddings(hidden, batch: batch)
        let ref = try g.tensor("outputs.sentence_embeddings")
        let d = emb.maxAbsDifference(ref)
        print("MiniLM sentence embeddings: max abs diff to PyTorch \(d)")
        XCTAssertLessThanOrEqual(d, 1e-4)

        let D = 384
        func cos(_ a: Int, _ b: Int) -> Float {
            (0..<D).reduce(0) { $0 + emb.scalars[a * D + $1] * emb.scalars[b * D + $1] }
        }
        let known: [(Int, Int, Float)] = [(0, 1, 0.675212), (2, 3, 0.595287), (0, 2, -0.054027),
                                          (0, 3, -0.127441), (1, 2, -0.059130), (1, 3, -0.115810)]
        for (a, b, v) in known { XCTAssertEqual(cos(a, b), v, accuracy: 1e-4, "s\(a)\(b)") }
        let dims: [Float] = [0.021664, -0.004864, -0.009649, -0.063401, -0.167494, 0.004676, 0.080600, -0.024142]
        for (j, v) in dims.enumerated() { XCTAssertEqual(emb.scalars[j], v, accuracy: 1e-4, "sentence 0 dim \(j)") }
        XCTAssertEqual(Array(batch.inputIds[(4 * batch.seqLen)..<(4 * batch.seqLen + 12)]),
                       [101, 7592, 1010, 2088, 999, 14477, 20961, 3468, 19204, 3989, 1012, 102])
    }
}

import BERT
import Charts
import Foundation
import Runtime
import XCTest

/// `StructureFigure` from a model or its config.json alone: a compact model against the dense sizes its config keeps,
/// a dense model at 100 % everywhere; the same figure from the loaded model and from its config.
final class ModelStructureFigureTests: XCTestCase {
    func testFromAConfigAndFromTheModel() throws {
        let dense = BertConfig(vocabSize: 20, hiddenSize: 24, numHiddenLayers: 3, numAttentionHeads: 4, intermediateSize: 20,
                               maxPositionEmbeddings: 16)
        let denseFigure = StructureFigure(config: dense)
        XCTAssertEqual(denseFigure.layers, Array(repeating: .init(heads: 4, originalHeads: 4, ffnUnits: 20, originalFFNUnits: 20), count: 3))
        XCTAssertEqual(denseFigure.hiddenSize, 24)

        let shape = BertShape(vocabSize: 20, hiddenSize: 18, headDim: 6, maxPositions: 16, typeVocabSize: 2,
                              layers: [.init(heads: 2, ffnWidth: 7), .init(heads: 0, ffnWidth: 20), .init(heads: 4, ffnWidth: 0)])
        var compact = dense
        compact.compact = try XCTUnwrap(CompactLayout(describing: shape, config: dense))
        let figure = StructureFigure(config: compact)
        XCTAssertEqual(figure.layers.map(\.heads), [2, 0, 4])
        XCTAssertEqual(figure.layers.map(\.ffnUnits), [7, 20, 0])
        XCTAssertEqual(Set(figure.layers.map(\.originalHeads)), [4])
        XCTAssertEqual(Set(figure.layers.map(\.originalFFNUnits)), [20])
        XCTAssertEqual(figure.hiddenSize, 18)
        XCTAssertEqual(figure.originalHiddenSize, 24)

        let model = BertModel.randomlyInitialized(config: dense, shape: shape, task: .classification(labels: 2), seed: 1)
        XCTAssertEqual(StructureFigure(model: model), figure)
        XCTAssertTrue(figure.svg().contains("Kept structure per layer (hidden dims 18 of 24)"))
    }
}

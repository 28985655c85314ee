import XCTest
@testable import BERT

/// Parameter accounting of cofi-spec §3 and decision 1, checked on BERT-base's numbers.
final class ShapeTests: XCTestCase {
    let bertBase = BertShape(config: BertConfig(vocabSize: 30522, hiddenSize: 768, numHiddenLayers: 12,
                                                numAttentionHeads: 12, intermediateSize: 3072))

    func testBertBasePrunableSizeMatchesTheReference() {
        XCTAssertEqual(bertBase.attentionPrunableParameters(layer: 0), 2_362_368)
        XCTAssertEqual(bertBase.attentionPrunableParameters(layer: 0) / 12, 196_864, "per head")
        XCTAssertEqual(bertBase.ffnPrunableParameters(layer: 0), 4_722_432)
        XCTAssertEqual(bertBase.ffnPrunableParameters(layer: 0) / 3072, 1_537, "per FFN unit (floor)")
        XCTAssertEqual(bertBase.prunableParameters, 85_017_600, "M")
        XCTAssertEqual(bertBase.encoderParameters, 85_054_464, "P_full: LayerNorms included")
    }

    func testForwardFLOPsMatchBaselines() {
        XCTAssertEqual(bertBase.forwardFLOPs(tokens: 128) / 1e9, 22.35, accuracy: 0.01)
    }

    func testHeterogeneousShapeCountsOnlyWhatIsPresent() {
        var s = bertBase
        s.layers = [LayerShape(heads: 2, ffnWidth: 300), LayerShape(heads: 0, ffnWidth: 0)]
        XCTAssertEqual(s.attentionPrunableParameters(layer: 0), 4 * 768 * 128 + 3 * 128 + 768)
        XCTAssertEqual(s.ffnPrunableParameters(layer: 0), 2 * 768 * 300 + 300 + 768)
        XCTAssertEqual(s.attentionPrunableParameters(layer: 1), 0)
        XCTAssertEqual(s.ffnPrunableParameters(layer: 1), 0)
        XCTAssertEqual(s.encoderParameters, s.prunableParameters + 4 * 768)
    }

    /// The CoFi-s95 shape of BASELINES.md: 4.29 M encoder parameters, 1.12 GFLOP per 128-token sequence.
    func testCoFiS95ShapeMatchesBaselines() {
        var s = bertBase
        let heads = [2, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0]
        let ffn = [300, 260, 240, 220, 200, 200, 180, 150, 120, 100, 30, 0]
        s.layers = zip(heads, ffn).map { LayerShape(heads: $0, ffnWidth: $1) }
        XCTAssertEqual(Double(s.encoderParameters) / 1e6, 4.29, accuracy: 0.01)
        XCTAssertEqual(s.forwardFLOPs(tokens: 128) / 1e9, 1.12, accuracy: 0.01)
    }
}

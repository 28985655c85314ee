import Foundation
import XCTest
@testable import Charts

/// The kept-structure figure: exactly the bar chart `cofi prune`'s report drew before it was one function, with
/// a removed sublayer at 0 and the counts as labels.
final class StructureFigureTests: XCTestCase {
    func testIsTheReportsBarChart() {
        let kept = [(heads: 12, ffn: 1536), (heads: 0, ffn: 700), (heads: 5, ffn: 0)]
        let figure = StructureFigure(layers: kept.map { .init(heads: $0.heads, originalHeads: 12, ffnUnits: $0.ffn, originalFFNUnits: 1536) },
                                     hiddenSize: 300, originalHiddenSize: 384)
        // The report's own code, as it was: percentages of the dense layer, "kept/original" labels.
        var chart = SVGChart(title: "Kept structure per layer (hidden dims 300 of 384)", xLabel: "layer", yLabel: "% of the dense layer kept")
        chart.height = 320
        let expected = chart.bars(
            categories: ["1", "2", "3"],
            series: [("attention heads", kept.map { 100 * Double($0.heads) / 12 }, kept.map { "\($0.heads)/12" }, SVGChart.palette[0]),
                     ("FFN units", kept.map { 100 * Double($0.ffn) / 1536 }, kept.map { "\($0.ffn)/1536" }, SVGChart.palette[1])],
            maxValue: 100)
        XCTAssertEqual(figure.svg(), expected)
        XCTAssertTrue(expected.contains(">0/12<") && expected.contains(">700/1536<") && expected.contains(">0/1536<"))
    }

    func testAnEmptyOriginalDrawsZero() {
        let svg = StructureFigure(layers: [.init(heads: 0, originalHeads: 0, ffnUnits: 0, originalFFNUnits: 0)],
                                  hiddenSize: 8, originalHiddenSize: 8).svg()
        XCTAssertTrue(svg.contains(">0/0<"), svg)
        XCTAssertFalse(svg.contains("nan"), svg)
    }
}

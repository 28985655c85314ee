import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import Charts

/// The report charts: tick choice, escaping, well-formed SVG, and the data really drawn.
final class SVGChartTests: XCTestCase {
    func testTicks() {
        XCTAssertEqual(SVGChart.ticks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1.0].map { $0 }, accuracy: 1e-12)
        XCTAssertEqual(SVGChart.ticks(0, 897), [0, 200, 400, 600, 800], accuracy: 1e-9)
        XCTAssertEqual(SVGChart.ticks(-17.3, 18.4), [-10, 0, 10], accuracy: 1e-9)
        XCTAssertEqual(SVGChart.ticks(3, 3), [3])
        XCTAssertEqual(SVGChart.label(0.25), "0.25")
        XCTAssertEqual(SVGChart.label(200), "200")
    }

    func wellFormed(_ svg: String, file: StaticString = #filePath, line: UInt = #line) {
        let parser = XMLParser(data: Data(svg.utf8))
        XCTAssertTrue(parser.parse(), "not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?")", file: file, line: line)
    }

    func testLineChartDrawsEverySeriesAndEscapes() {
        let chart = SVGChart(title: "a < b & \"c\"", xLabel: "step", yLabel: "ŝ")
        let svg = chart.lines([.init(name: "expected", points: [(0, 0.1), (10, 0.5), (20, .nan), (30, 0.9)], color: "#000000"),
                               .init(name: "evals", points: [(10, 0.4), (30, 0.88)], color: "#111111", markers: true)],
                              hLines: [("target", 0.9, "#222222")], vLines: [("prune", 0)])
        wellFormed(svg)
        XCTAssertTrue(svg.contains("a &lt; b &amp; &quot;c&quot;"))
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 1)
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 2 + 1)  // two markers and the legend's
        // The NaN point is dropped: three points in the polyline.
        let polyline = svg.components(separatedBy: "<polyline points=\"")[1].components(separatedBy: "\"")[0]
        XCTAssertEqual(polyline.split(separator: " ").count, 3)
        XCTAssertEqual(chart.lines([.init(name: "x", points: [(0, 1)], color: "#000000")]),
                       chart.lines([.init(name: "x", points: [(0, 1)], color: "#000000")]), "deterministic")
    }

    func testBarChart() {
        let svg = SVGChart(title: "kept", xLabel: "layer", yLabel: "%").bars(
            categories: ["1", "2", "3"], series: [("heads", [50, 0, 100], ["6/12", "0/12", "12/12"], "#000000"),
                                                  ("units", [10, 20, 30], nil, "#111111")], maxValue: 100)
        wellFormed(svg)
        XCTAssertEqual(svg.components(separatedBy: "<rect x=").count - 1, 1 + 6)  // the frame and six bars
        XCTAssertTrue(svg.contains(">6/12<"))
        XCTAssertTrue(svg.contains(">30<"))
    }
}

private func XCTAssertEqual(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(a) vs \(b)", file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, "\(a) vs \(b)", file: file, line: line) }
}

import Foundation
import XCTest
import Tensor
@testable import Tasks

/// The metric functions against scikit-learn / scipy values in Fixtures/metrics.json
/// (written by scripts/reference/make_metrics_golden.py), to 1e-9. A null in the fixture is scipy's NaN.
final class MetricsTests: XCTestCase {
    struct Fixture: Decodable {
        struct Classification: Decodable {
            var name: String
            var y_true: [Int]
            var y_pred: [Int]
            var accuracy: Double
            var f1: Double?
            var mcc: Double
        }
        struct Regression: Decodable {
            var name: String
            var x: [Double]
            var y: [Double]
            var pearson: Double?
            var spearman: Double?
        }
        var generator: String
        var classification: [Classification]
        var regression: [Regression]
    }

    func loadFixture() throws -> Fixture {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/metrics", withExtension: "json"),
                                "Fixtures/metrics.json is missing; run scripts/reference/make_metrics_golden.py")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    func testClassificationMetricsMatchScikitLearn() throws {
        let g = try loadFixture()
        XCTAssertGreaterThanOrEqual(g.classification.count, 8)
        var maxDiff = 0.0
        for c in g.classification {
            let acc = Metrics.accuracy(predictions: c.y_pred, references: c.y_true)
            let mcc = Metrics.matthewsCorrelation(predictions: c.y_pred, references: c.y_true)
            XCTAssertEqual(acc, c.accuracy, accuracy: 1e-9, "accuracy: \(c.name)")
            XCTAssertEqual(mcc, c.mcc, accuracy: 1e-9, "mcc: \(c.name)")
            maxDiff = maxError([maxDiff, absDifference(acc, c.accuracy), absDifference(mcc, c.mcc)])
            if let ref = c.f1 {
                let f1 = Metrics.f1(predictions: c.y_pred, references: c.y_true)
                XCTAssertEqual(f1, ref, accuracy: 1e-9, "f1: \(c.name)")
                maxDiff = maxError([maxDiff, absDifference(f1, ref)])
            }
        }
        print("classification metrics vs scikit-learn: \(g.classification.count) cases, max abs diff \(maxDiff)")
    }

    func testCorrelationsMatchScipy() throws {
        let g = try loadFixture()
        XCTAssertGreaterThanOrEqual(g.regression.count, 6)
        var maxDiff = 0.0
        for c in g.regression {
            let p = Metrics.pearson(c.x, c.y), s = Metrics.spearman(c.x, c.y)
            for (name, mine, ref) in [("pearson", p, c.pearson), ("spearman", s, c.spearman)] {
                if let ref {
                    XCTAssertEqual(mine, ref, accuracy: 1e-9, "\(name): \(c.name)")
                    maxDiff = maxError([maxDiff, absDifference(mine, ref)])
                } else {
                    XCTAssertTrue(mine.isNaN, "\(name): \(c.name): scipy gives NaN, got \(mine)")
                }
            }
        }
        print("correlations vs scipy: \(g.regression.count) cases, max abs diff \(maxDiff)")
    }

    func testAverageRanksShareTies() {
        XCTAssertEqual(Metrics.averageRanks([10, 20, 10, 30, 20, 20]), [1.5, 4, 1.5, 6, 4, 4])
        XCTAssertEqual(Metrics.averageRanks([]), [])
    }

    func testDegenerateInputsAreNaNWhereReferencesRaise() {
        XCTAssertTrue(Metrics.accuracy(predictions: [], references: []).isNaN)
        XCTAssertTrue(Metrics.f1(predictions: [], references: []).isNaN)
        XCTAssertTrue(Metrics.matthewsCorrelation(predictions: [], references: []).isNaN)
        XCTAssertTrue(Metrics.pearson([1], [2]).isNaN)
        XCTAssertTrue(Metrics.spearman([], []).isNaN)
    }

    func testTaskMetricSpecsAndPrimaryScore() {
        XCTAssertEqual(GLUETask.cola.metrics.reported, [.matthewsCorrelation])
        XCTAssertEqual(GLUETask.cola.metrics.primaryName, "matthews_correlation")
        XCTAssertEqual(GLUETask.mrpc.metrics.reported, [.accuracy, .f1])
        XCTAssertEqual(GLUETask.qqp.metrics.primaryName, "accuracy")
        XCTAssertEqual(GLUETask.stsb.metrics.reported, [.pearson, .spearman])
        XCTAssertEqual(GLUETask.stsb.metrics.primaryName, "corr")
        for t in [GLUETask.sst2, .mnli, .mnliMismatched, .qnli, .rte, .wnli] {
            XCTAssertEqual(t.metrics.reported, [.accuracy], "\(t)")
        }

        let gold: [Label] = [1, 0, 1, 1, 0].map { .classification($0) }
        let pred: [Label] = [1, 1, 1, 0, 0].map { .classification($0) }
        let mrpc = GLUETask.mrpc.metrics.evaluate(predictions: pred, references: gold)
        XCTAssertEqual(mrpc[.accuracy]!, 0.6, accuracy: 1e-12)
        XCTAssertEqual(mrpc[.f1]!, 2.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(mrpc.primary, 0.6, accuracy: 1e-12)
        print("MRPC report: \(mrpc)")

        let x: [Label] = [0.1, 0.5, 2.0, 4.5].map { .regression($0) }
        let y: [Label] = [0.0, 1.0, 1.5, 5.0].map { .regression($0) }
        let sts = GLUETask.stsb.metrics.evaluate(predictions: x, references: y)
        let p = Metrics.pearson(x.map(\.value), y.map(\.value))
        XCTAssertEqual(sts[.spearman]!, 1, accuracy: 1e-12)
        XCTAssertEqual(sts.primary, (p + 1) / 2, accuracy: 1e-12)
        print("STS-B report: \(sts)")

        let constant = GLUETask.stsb.metrics.evaluate(predictions: Array(repeating: .regression(2), count: 4),
                                                     references: y)
        XCTAssertTrue(constant.primary.isNaN, "Pearson of constant predictions is NaN, as in scipy")
    }
}

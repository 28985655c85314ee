import BERT
import Foundation
import Tasks
import Tensor
import XCTest
@testable import Runtime

/// `LatencyProfile` (prediction, fit, file) and `LatencyProfiler` (the measuring procedure on exact synthetic
/// timings, the layouts' placement in the engine's program, and one real end-to-end profile of a tiny model).
/// Nothing here asserts wall-clock accuracy: the real profile is only checked for consistency.
final class LatencyProfilerTests: XCTestCase {
    typealias Layout = LatencyProfiler.Layout

    /// A dense MiniLM-like shape (6 layers of 12 heads of 32, FFN 1536, D = 384).
    static let miniLM = BertShape(vocabSize: 30522, hiddenSize: 384, headDim: 32, maxPositions: 512, typeVocabSize: 2,
                                  layers: Array(repeating: LayerShape(heads: 12, ffnWidth: 1536), count: 6))

    static let conditions = LatencyProfile.Conditions(batch: 1, sequenceLength: 128, threads: 2, processor: "test",
                                                      kernels: "generic")

    /// A profile with distinct, positive coefficients in every term.
    static func known(pooled: Bool) -> LatencyProfile {
        let attention = LatencyProfile.Bilinear(c0: 0.02, cD: 1e-4, cN: 0.003, cND: 2.5e-4)
        let ffn = LatencyProfile.Bilinear(c0: 0.015, cD: 8e-5, cN: 2e-5, cND: 2.2e-6)
        return LatencyProfile(
            conditions: conditions, model: miniLM, pooled: pooled, base: .init(c0: 0.05, cD: 3e-4), attention: attention,
            lastAttention: pooled ? .init(c0: 0.03, cD: 6e-5, cN: 0.001, cND: 1.4e-4) : attention,
            ffn: ffn, clsFFN: pooled ? .init(c0: 0.004, cD: 2e-6, cN: 1e-6, cND: 4e-8) : ffn)
    }

    /// A timer that answers each layout with `profile`'s exact prediction, counting the layouts it was asked for.
    final class ExactTimer {
        let profile: LatencyProfile
        var layouts: [Layout] = []
        init(_ profile: LatencyProfile) { self.profile = profile }
        func time(_ group: [Layout]) -> [Double] {
            layouts += group
            return group.map { profile.predict(hidden: $0.hidden, heads: $0.heads, ffnUnits: $0.ffnUnits) }
        }
    }

    func assertClose(_ a: LatencyProfile.Bilinear, _ b: LatencyProfile.Bilinear, _ name: String, line: UInt = #line) {
        for (x, y, term) in [(a.c0, b.c0, "c0"), (a.cD, b.cD, "cD"), (a.cN, b.cN, "cN"), (a.cND, b.cND, "cND")] {
            XCTAssertEqual(x, y, accuracy: 1e-9 + 1e-6 * abs(y), "\(name).\(term)", line: line)
        }
    }

    // MARK: - Fit

    func testFitBilinearRecoversCoefficientsFromExactSamples() throws {
        let truth = LatencyProfile.Bilinear(c0: 0.1, cD: 2e-3, cN: 0.05, cND: 7e-4)
        var samples: [LatencyProfile.Sample] = []
        for D in [96, 192, 288, 384] {
            for n in [1, 2, 6, 12] { samples.append(.init(n: n, hidden: D, ms: truth(n: Double(n), hidden: Double(D)))) }
        }
        assertClose(try LatencyProfile.fitBilinear(samples), truth, "bilinear")
        let linear = try LatencyProfile.fitLinear([96, 192, 384].map { .init(n: 0, hidden: $0, ms: 0.2 + 1e-3 * Double($0)) })
        XCTAssertEqual(linear.c0, 0.2, accuracy: 1e-9)
        XCTAssertEqual(linear.cD, 1e-3, accuracy: 1e-12)
        // One width only: the D terms are not determined.
        XCTAssertThrowsError(try LatencyProfile.fitBilinear(samples.filter { $0.hidden == 96 }))
    }

    /// A kink at the cheap end (one head's attention on one thread, half the cost the line through the rest
    /// says): the relative fit bends every large sublayer towards it, the proportional fit (the profiler's) much less.
    func testProportionalWeightingFitsTheLargeSublayersBest() throws {
        let truth = LatencyProfile.Bilinear(c0: 0.01, cD: 1e-4, cN: 0.01, cND: 5e-4)
        var samples: [LatencyProfile.Sample] = []
        for D in [80, 176, 272, 384] {
            for n in [1, 2, 3, 6, 9, 12] {
                let t = truth(n: Double(n), hidden: Double(D))
                samples.append(.init(n: n, hidden: D, ms: n == 1 ? t / 2 : t))
            }
        }
        let relative = try LatencyProfile.fitBilinear(samples), proportional = try LatencyProfile.fitBilinear(samples, weighting: .proportional)
        let dense = truth(n: 12, hidden: 384)
        let relativeError = abs(relative(n: 12, hidden: 384) - dense) / dense
        let proportionalError = abs(proportional(n: 12, hidden: 384) - dense) / dense
        XCTAssertLessThan(proportionalError, relativeError / 2, "relative \(relativeError), proportional \(proportionalError)")
        // Exact samples are recovered by either.
        let exact = samples.map { LatencyProfile.Sample(n: $0.n, hidden: $0.hidden, ms: truth(n: Double($0.n), hidden: Double($0.hidden))) }
        assertClose(try LatencyProfile.fitBilinear(exact, weighting: .proportional), truth, "proportional")
    }

    /// The whole procedure (layouts, differences, amortization, fits, checks) on timings that are exactly some
    /// profile's predictions gives that profile back: the layouts isolate each variant as `predict` places it.
    func testMeasureRecoversAKnownProfileFromExactTimings() throws {
        for pooled in [true, false] {
            let truth = Self.known(pooled: pooled)
            let timer = ExactTimer(truth)
            var profiler = LatencyProfiler(checks: 5)
            profiler.calibrationShapes = 0
            var notes: [String] = []
            profiler.note = { notes.append($0) }
            let got = try profiler.measure(dense: Self.miniLM, pooled: pooled, conditions: Self.conditions, timer: timer.time)
            XCTAssertNil(got.calibration)
            XCTAssertEqual(got.pooled, pooled)
            XCTAssertEqual(got.model, Self.miniLM)
            XCTAssertEqual(got.conditions, Self.conditions)
            XCTAssertEqual(got.base.c0, truth.base.c0, accuracy: 1e-9)
            XCTAssertEqual(got.base.cD, truth.base.cD, accuracy: 1e-12)
            assertClose(got.attention, truth.attention, "attention")
            assertClose(got.lastAttention, truth.lastAttention, "lastAttention")
            assertClose(got.ffn, truth.ffn, "ffn")
            assertClose(got.clsFFN, truth.clsFFN, "clsFFN")
            XCTAssertEqual(got.checks.count, 5)
            for c in got.checks { XCTAssertEqual(c.relativeError, 0, accuracy: 1e-9) }
            // The grid: every width and count was timed; a span head times no [CLS] layouts.
            let widths = Set(timer.layouts.dropLast(5).map(\.hidden))  // the last 5: the checks
            XCTAssertEqual(widths, [384, 272, 176, 80], "\(widths)")
            let clsLayouts = timer.layouts.filter { $0.heads.first == 1 && ($0.ffnUnits.first ?? 0) > 0 }
            XCTAssertEqual(clsLayouts.isEmpty, !pooled)
            XCTAssertTrue(notes.contains { $0.hasPrefix("D=80 heads=6:") }, notes.joined(separator: "\n"))
        }
    }

    /// Whole shapes that run 8 % slower than the sum of their parts, plus 0.02 ms: the calibration finds both, and
    /// the calibrated profile predicts the checks exactly; `calibrated` is offset + scale × the prediction.
    func testCalibrationAgainstWholeShapes() throws {
        let truth = Self.known(pooled: true)
        let layers = Self.miniLM.layers.count
        // The grid's layouts have 1, 4, 5, 16, 17, 64 or 65 layers; the calibration and check shapes the dense 6.
        let timer: LatencyProfiler.Timer = { group in
            group.map { l in
                let parts = truth.predict(hidden: l.hidden, heads: l.heads, ffnUnits: l.ffnUnits)
                return l.heads.count == layers ? 0.02 + 1.08 * parts : parts
            }
        }
        var profiler = LatencyProfiler(checks: 5)
        let got = try profiler.measure(dense: Self.miniLM, pooled: true, conditions: Self.conditions, timer: timer)
        let c = try XCTUnwrap(got.calibration)
        XCTAssertEqual(c.offset, 0.02, accuracy: 1e-9)
        XCTAssertEqual(c.scale, 1.08, accuracy: 1e-9)
        XCTAssertEqual(c.shapes, 20)
        for check in got.checks { XCTAssertEqual(check.relativeError, 0, accuracy: 1e-9) }
        profiler.calibrationShapes = 0
        let raw = try profiler.measure(dense: Self.miniLM, pooled: true, conditions: Self.conditions, timer: timer)
        XCTAssertTrue(raw.checks.allSatisfy { $0.relativeError < -0.05 }, "uncalibrated: the parts' sum is short")
        let shape = Self.miniLM
        XCTAssertEqual(truth.calibrated(offset: 0.3, scale: 1.5, shapes: 2).predict(shape), 0.3 + 1.5 * truth.predict(shape), accuracy: 1e-12)
    }

    /// One timing glitch among exact samples (a cost measured at a thirtieth of its value, as the real profile's
    /// last attention layer at D=272, 9 heads): the plain fit weighted by 1/cost is pulled far off, the fit that sets
    /// outliers aside recovers the coefficients and names the glitch.
    func testAnOutlierIsSetAside() throws {
        let truth = LatencyProfile.Bilinear(c0: 0.003, cD: 0.0001, cN: 0.004, cND: 0.00008)
        var samples: [LatencyProfile.Sample] = []
        for D in [384, 272, 176, 80] {
            for n in [1, 2, 3, 6, 9, 12] { samples.append(.init(n: n, hidden: D, ms: truth(n: Double(n), hidden: Double(D)))) }
        }
        let glitch = samples.firstIndex { $0.n == 9 && $0.hidden == 272 }!
        samples[glitch].ms /= 30
        let plain = try LatencyProfile.fitBilinear(samples, weighting: .proportional)
        let at12 = truth(n: 12, hidden: 382)
        XCTAssertGreaterThan(abs(plain(n: 12, hidden: 382) - at12) / at12, 0.1, "the glitch pulls the plain fit off")
        let robust = try LatencyProfile.fitBilinearRejectingOutliers(samples, weighting: .proportional)
        XCTAssertEqual(robust.dropped, [samples[glitch]])
        assertClose(robust.fit, truth, "robust")
        // Exact samples lose nothing.
        samples[glitch].ms *= 30
        XCTAssertEqual(try LatencyProfile.fitBilinearRejectingOutliers(samples, weighting: .proportional).dropped, [])
    }

    /// Cheap sublayers are amortized over more layers: the [CLS] FFN of one unit costs microseconds.
    func testCheapSublayersGrowK() throws {
        let timer = ExactTimer(Self.known(pooled: true))
        _ = try LatencyProfiler(checks: 0).measure(dense: Self.miniLM, pooled: true, conditions: Self.conditions,
                                                   timer: timer.time)
        let longest = timer.layouts.map(\.heads.count).max() ?? 0
        XCTAssertGreaterThan(longest, 4)
        XCTAssertLessThanOrEqual(longest, 64)
    }

    func testNoisyTimingsThatCannotBeFittedAreAClearError() {
        // Every layout takes the same time: no difference is positive.
        XCTAssertThrowsError(try LatencyProfiler(checks: 0).measure(dense: Self.miniLM, pooled: true, conditions: Self.conditions,
                                                                    timer: { $0.map { _ in 1.0 } })) { error in
            XCTAssertTrue("\(error)".contains("cannot fit the attention costs"), "\(error)")
        }
    }

    func testGrid() {
        let g = LatencyProfiler.Grid(dense: Self.miniLM, heads: 12, units: 1536)
        // Pruned widths that are whole 32-wide panels move half a panel down; the dense ones and heads stay.
        XCTAssertEqual(g.hidden, [384, 272, 176, 80])
        XCTAssertEqual(g.heads, [1, 2, 3, 6, 9, 12])
        XCTAssertEqual(g.units, [1, 80, 176, 368, 752, 1136, 1536])
        XCTAssertEqual(LatencyProfiler.Grid(dense: Self.miniLM, heads: 12, units: 1536, panel: 1_000_000).hidden, [384, 288, 192, 96])
        let tiny = BertShape(vocabSize: 10, hiddenSize: 4, headDim: 2, maxPositions: 8, typeVocabSize: 2,
                             layers: [LayerShape(heads: 2, ffnWidth: 8)])
        let t = LatencyProfiler.Grid(dense: tiny, heads: 2, units: 8)
        XCTAssertEqual(t.hidden, [4, 3, 2, 1])
        XCTAssertEqual(t.heads, [1, 2])
        XCTAssertEqual(t.units, [1, 2, 4, 6, 8])
    }

    func testCheckShapesAreSeededAndInRange() {
        let a = LatencyProfiler.checkShapes(dense: Self.miniLM, heads: 12, units: 1536, count: 20, seed: 3)
        XCTAssertEqual(a, LatencyProfiler.checkShapes(dense: Self.miniLM, heads: 12, units: 1536, count: 20, seed: 3))
        XCTAssertEqual(a.count, 20)
        for s in a {
            XCTAssertTrue((96...384).contains(s.hidden))
            XCTAssertEqual(s.heads.count, 6)
            XCTAssertTrue(s.heads.allSatisfy { (0...12).contains($0) } && s.ffnUnits.allSatisfy { (0...1536).contains($0) })
        }
        let sublayers = a.flatMap { $0.heads + $0.ffnUnits }
        XCTAssertTrue(sublayers.contains(0), "some sublayers removed")
        XCTAssertTrue(a.contains { s in zip(s.heads, s.ffnUnits).contains { $0 == 0 && $1 == 0 } }, "some layers empty")
    }

    // MARK: - Prediction

    /// Hand-written shapes against hand-computed sums, with coefficients that tell the variants apart.
    func testPredictPlacesTheCLSCut() {
        func sum(_ xs: Double...) -> Double { xs.reduce(0, +) }
        // attention = 1 + 0.1·n, last = 10 + n, ffn = 100 + 0.01·n, cls = 1000 + 0.001·n, base = 5 (D-free, so
        // each term is readable), and a D-dependent base check at the end.
        var p = LatencyProfile(conditions: Self.conditions, model: Self.miniLM, pooled: true, base: .init(c0: 5, cD: 0),
                               attention: .init(c0: 1, cD: 0, cN: 0.1, cND: 0),
                               lastAttention: .init(c0: 10, cD: 0, cN: 1, cND: 0),
                               ffn: .init(c0: 100, cD: 0, cN: 0.01, cND: 0),
                               clsFFN: .init(c0: 1000, cD: 0, cN: 0.001, cND: 0))
        // Layer 2 is the last attention layer: layers 0, 1 before it (full), its FFN and layer 3's after it ([CLS]).
        XCTAssertEqual(p.predict(hidden: 8, heads: [2, 0, 3, 0], ffnUnits: [10, 5, 20, 7]),
                       sum(5, 1 + 0.2, 100 + 0.1, 100 + 0.05, 10 + 3, 1000 + 0.02, 1000 + 0.007), accuracy: 1e-9)
        // No attention anywhere: every FFN is on the [CLS] rows.
        XCTAssertEqual(p.predict(hidden: 8, heads: [0, 0], ffnUnits: [4, 6]), sum(5, 1000 + 0.004, 1000 + 0.006), accuracy: 1e-9)
        // Attention in the last layer only: the FFNs before it are full.
        XCTAssertEqual(p.predict(hidden: 8, heads: [0, 0, 1], ffnUnits: [4, 0, 6]), sum(5, 100 + 0.04, 10 + 1, 1000 + 0.006),
                       accuracy: 1e-9)
        // Nothing at all: the base.
        XCTAssertEqual(p.predict(hidden: 8, heads: [0, 0], ffnUnits: [0, 0]), 5)
        // A span head has no cut: every sublayer is the full variant.
        p.pooled = false
        XCTAssertEqual(p.predict(hidden: 8, heads: [2, 0, 3, 0], ffnUnits: [10, 5, 20, 7]),
                       sum(5, 1 + 0.2, 100 + 0.1, 100 + 0.05, 1 + 0.3, 100 + 0.2, 100 + 0.07), accuracy: 1e-9)
        XCTAssertEqual(p.predict(hidden: 8, heads: [0, 0], ffnUnits: [4, 6]), sum(5, 100 + 0.04, 100 + 0.06), accuracy: 1e-9)
        // The bilinear terms: c0 + cD·D + (cN + cND·D)·n.
        p.attention = .init(c0: 1, cD: 0.5, cN: 0.25, cND: 0.125)
        p.base = .init(c0: 2, cD: 0.5)
        XCTAssertEqual(p.predict(hidden: 4, heads: [3], ffnUnits: [0]), sum(2 + 2, 1 + 2, (0.25 + 0.5) * 3), accuracy: 1e-12)
    }

    /// `predict`'s placement of each sublayer (which variant) is the engine's: for random shapes and both kinds of
    /// head, the variants counted in the engine's forward program (`InferenceEngine.program`) are those a profile
    /// with one indicator coefficient per variant predicts.
    func testPredictAgreesWithTheEngineProgram() throws {
        let config = BertConfig(vocabSize: 20, hiddenSize: 8, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 6,
                                maxPositionEmbeddings: 8)
        var rng = Xoshiro256(seed: 5)
        for task in [TaskHeadKind.classification(labels: 2), .span] {
            let timer = EngineTimer(config: config, task: task, threads: 1, inputs: [], warmup: 0, repeats: 1)
            let indicator = LatencyProfile(
                conditions: Self.conditions, model: BertShape(config: config), pooled: task.usesPooler, base: .init(c0: 0, cD: 0),
                attention: .init(c0: 1, cD: 0, cN: 0, cND: 0), lastAttention: .init(c0: 100, cD: 0, cN: 0, cND: 0),
                ffn: .init(c0: 10_000, cD: 0, cN: 0, cND: 0), clsFFN: .init(c0: 1_000_000, cD: 0, cN: 0, cND: 0))
            var layouts = [Layout(hidden: 8, [(0, 0)]), Layout(hidden: 8, [(0, 3), (0, 2)]), Layout(hidden: 8, [(2, 0)])]
            for _ in 0..<30 {
                let L = 1 + Int(rng.next() % 5)
                layouts.append(Layout(hidden: 2 + Int(rng.next() % 7),
                                      (0..<L).map { _ in (Int(rng.next() % 3), Int(rng.next() % 3) * 3) }))
            }
            // The profiler's own layouts, K = 4.
            layouts += [Layout(hidden: 8, Array(repeating: (2, 0), count: 4)), Layout(hidden: 8, Array(repeating: (0, 5), count: 4) + [(1, 0)]),
                        Layout(hidden: 8, [(1, 5)] + Array(repeating: (0, 5), count: 3))]
            for layout in layouts {
                let engine = try InferenceEngine(model: timer.model(layout), threads: 1)
                var counts = 0.0, cut = false
                for step in engine.program {
                    switch step {
                    case .cutToCLS: cut = true
                    case .attention(_, let cls): counts += cls ? 100 : 1
                    case .rows(let ops):
                        for case .feedForward(_) in ops { counts += cut ? 1_000_000 : 10_000 }
                    }
                }
                XCTAssertEqual(indicator.predict(hidden: layout.hidden, heads: layout.heads, ffnUnits: layout.ffnUnits), counts,
                               "\(task) \(layout)")
            }
        }
    }

    // MARK: - File

    var work: URL!

    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-profile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let work { try? FileManager.default.removeItem(at: work) }
    }

    func testFileRoundTripAndErrorsNameTheFile() throws {
        var p = Self.known(pooled: true)
        p.checks = [.init(hidden: 200, heads: [1, 0, 12, 0, 0, 3], ffnUnits: [7, 0, 1536, 100, 0, 0], predictedMs: 3.25, measuredMs: 3.5)]
        let file = work.appendingPathComponent("profile.json")
        try p.write(to: file)
        XCTAssertEqual(try LatencyProfile.read(file), p)

        let text = try String(contentsOf: file, encoding: .utf8)
        func expectError(_ contents: String, _ fragment: String, line: UInt = #line) throws {
            let bad = work.appendingPathComponent("bad.json")
            try Data(contents.utf8).write(to: bad)
            XCTAssertThrowsError(try LatencyProfile.read(bad), line: line) { error in
                XCTAssertTrue("\(error)".contains(bad.path), "the error names the file: \(error)", line: line)
                XCTAssertTrue("\(error)".contains(fragment), "expected '\(fragment)' in: \(error)", line: line)
            }
        }
        try expectError(String(text.prefix(text.count / 2)), "not a latency profile")
        try expectError("garbage\u{0}\u{1}", "not a latency profile")
        try expectError("", "not a latency profile")
        try expectError(text.replacingOccurrences(of: "\"format\" : 1", with: "\"format\" : 2"), "format 2, this cofi reads 1")
        XCTAssertThrowsError(try LatencyProfile.read(work.appendingPathComponent("missing.json"))) { error in
            XCTAssertTrue("\(error)".contains("missing.json") && "\(error)".contains("cofi profile"), "\(error)")
        }
    }

    // MARK: - End to end

    /// A real profile of a tiny random classifier (D = 16, 2 layers, T = 8) on the engine: consistent, not accurate.
    func testTinyModelProfileEndToEnd() throws {
        let words = ["the", "film", "was", "good", "bad", "plot", "fun", "dull"]
        let tokenizer = try WordPieceTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)
        let config = BertConfig(vocabSize: 13, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 32,
                                maxPositionEmbeddings: 16, initializerRange: 0.2)
        let model = BertModel.randomlyInitialized(config: config, task: .classification(labels: 2), seed: 3)
        var notes: [String] = []
        var profiler = LatencyProfiler(batch: 2, sequenceLength: 40, threads: 1, checks: 3)
        profiler.note = { notes.append($0) }
        profiler.repeats = 5
        profiler.warmup = 1
        profiler.maxLayersPerTiming = 16
        let p = try profiler.profile(model: model, tokenizer: tokenizer)
        print(notes.joined(separator: "\n"))
        XCTAssertTrue(notes.contains { $0.contains("capped at the model's 16 positions") }, notes.joined(separator: "\n"))
        XCTAssertEqual(p.conditions.batch, 2)
        XCTAssertEqual(p.conditions.sequenceLength, 16)
        XCTAssertEqual(p.conditions.threads, 1)
        XCTAssertFalse(p.conditions.processor.isEmpty)
        XCTAssertTrue(p.pooled)
        XCTAssertEqual(p.model, BertShape(config: config))
        let terms = [p.attention, p.lastAttention, p.ffn, p.clsFFN].flatMap { [$0.c0, $0.cD, $0.cN, $0.cND] } + [p.base.c0, p.base.cD]
        XCTAssertTrue(terms.allSatisfy(\.isFinite), "\(terms)")
        XCTAssertGreaterThan(p.predict(p.model), p.predict(hidden: 16, heads: [0, 0], ffnUnits: [0, 0]))
        XCTAssertEqual(p.checks.count, 3)
        for c in p.checks {
            XCTAssertTrue(c.measuredMs > 0 && c.predictedMs.isFinite, "\(c)")
            XCTAssertEqual(c.heads.count, 2)
        }
        let file = work.appendingPathComponent("tiny.json")
        try p.write(to: file)
        XCTAssertEqual(try LatencyProfile.read(file), p)
    }
}

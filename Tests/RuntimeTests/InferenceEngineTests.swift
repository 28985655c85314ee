import BERT
import Foundation
import PackedGEMM
import Platform
import Tensor
import XCTest
@testable import Runtime

/// The inference engine against the training-path forward (its oracle) on random models of every shape a CoFi
/// compact model can take, and each fused kernel against its naive twin.
final class InferenceEngineTests: XCTestCase {
    /// Every shape edge case at once: uneven heads, 0 heads, 0 FFN, a layer with neither, full layers.
    static let heterogeneous: [(Int, Int)] = [(4, 64), (0, 40), (2, 0), (0, 0), (1, 17), (3, 64)]
    /// Lengths 1…24 (the maximum) in a scrambled order, so the packed rows mix short and long sequences.
    static let mixedLengths = [7, 1, 24, 3, 16, 2, 24, 11, 5, 1, 9, 20]

    /// How a test forces the engine to split work that small models would keep on one thread.
    enum Split {
        /// The engine's own thresholds.
        case automatic
        /// Row-local work by blocks of rows; attention by items.
        case rows
        /// Each product by column blocks, each pass by rows; attention by items.
        case columns
        /// Whole sequences per thread (when the call's sequences balance), else as `rows`.
        case groups
    }

    /// How far the engine's outputs may be from the oracle's.
    static let tolerance: Float = 1e-5

    /// The engine against the oracle on random inputs of `lengths`: whether they agree to `tolerance` (false for
    /// any NaN or infinity on either side, `isClose`'s rule), the largest difference, and the largest |oracle
    /// output|. `packed` nil: the engine's default backend (`PackedGEMM` wherever it runs, which includes every
    /// debug build); false: the linear layers on BLAS.
    func compareWithOracle(_ model: BertModel, lengths: [Int], threads: Int? = nil, split: Split = .automatic,
                           packed: Bool? = nil, seed: UInt64 = 11) throws -> (agree: Bool, difference: Float, magnitude: Float) {
        let engine = try InferenceEngine(model: model, threads: threads,
                                         packedWeights: packed ?? KernelFamily.selected.family.usesPackedGEMM)
        if split != .automatic {
            engine.parallelGEMMWork = 0
            engine.parallelElementWork = 0
            engine.minRowsPerThread = split == .columns ? 1 << 30 : 1
            engine.allowSequenceGroups = split == .groups
        }
        let inputs = EngineFixtures.inputs(lengths: lengths, shape: model.shape, seed: seed)
        let got = try engine.run(inputs)
        let want = EngineFixtures.oracle(model, inputs)
        let d = EngineFixtures.maxDifference(got, want)
        print("engine vs training path (\(model.task!), \(engine.weights.packed ? "packed" : "BLAS"), split \(split), lengths \(lengths), shape \(model.shape.layers.map { "\($0.heads)/\($0.ffnWidth)" }), D \(model.shape.hiddenSize), threads \(engine.threads)): max abs diff \(d), max |value| \(EngineFixtures.maxMagnitude(want))")
        return (d <= Self.tolerance, d, EngineFixtures.maxMagnitude(want))
    }

    func assertMatchesOracle(_ model: BertModel, lengths: [Int], threads: Int? = nil, split: Split = .automatic,
                             packed: Bool? = nil, seed: UInt64 = 11, file: StaticString = #filePath,
                             line: UInt = #line) throws {
        let r = try compareWithOracle(model, lengths: lengths, threads: threads, split: split, packed: packed, seed: seed)
        XCTAssertTrue(r.agree, "engine vs training path: max abs diff \(r.difference)", file: file, line: line)
        XCTAssertGreaterThan(r.magnitude, 0.01, "outputs too small to test anything", file: file, line: line)
    }

    /// A model with one NaN weight gives NaN outputs on both paths; the comparison must report that as a failure
    /// (a `max` fold over the differences dropped it: `max(0, .nan)` is 0).
    func testNaNWeightFailsTheOracleComparison() throws {
        for task in [TaskHeadKind.classification(labels: 3), .span] {
            let model = EngineFixtures.model(Self.heterogeneous, task: task, seed: 16)
            let healthy = try compareWithOracle(model, lengths: [5, 9])
            XCTAssertTrue(healthy.agree, "\(task): the model before the NaN agrees (max abs diff \(healthy.difference))")
            let p = try XCTUnwrap(model.namedParameters.first { $0.0 == "bert.embeddings.LayerNorm.bias" }?.1)
            p.update { $0.scalars[3] = .nan }
            let r = try compareWithOracle(model, lengths: [5, 9])
            XCTAssertFalse(r.agree, "\(task): NaN outputs must not agree with anything")
            XCTAssertTrue(r.difference.isNaN, "\(task): the difference reports the NaN, got \(r.difference)")
        }
    }

    func testClassificationOnHeterogeneousShapeMatchesTrainingPath() throws {
        let model = EngineFixtures.model(Self.heterogeneous, task: .classification(labels: 3))
        try assertMatchesOracle(model, lengths: Self.mixedLengths)
        try assertMatchesOracle(model, lengths: Self.mixedLengths, threads: 1)
    }

    func testRegressionOnHeterogeneousShapeMatchesTrainingPath() throws {
        let model = EngineFixtures.model(Self.heterogeneous, task: .regression, seed: 8)
        try assertMatchesOracle(model, lengths: Self.mixedLengths, threads: 2)
    }

    func testSpanHeadOnHeterogeneousShapeMatchesTrainingPath() throws {
        let model = EngineFixtures.model(Self.heterogeneous, task: .span, seed: 9)
        try assertMatchesOracle(model, lengths: Self.mixedLengths)
        try assertMatchesOracle(model, lengths: Self.mixedLengths, threads: 1)
    }

    func testCutHiddenWidthMatchesTrainingPath() throws {
        for task in [TaskHeadKind.classification(labels: 2), .span] {
            let model = EngineFixtures.model([(2, 30), (0, 12), (3, 0)], hidden: 21, task: task, seed: 10)
            try assertMatchesOracle(model, lengths: Self.mixedLengths)
            try assertMatchesOracle(model, lengths: Self.mixedLengths, packed: false)
        }
    }

    /// Where the [CLS] cut happens: the last layer has attention; only the first does; no layer has any; the
    /// model has no layer at all.
    func testEveryPlaceOfTheCLSCutMatchesTrainingPath() throws {
        let shapes: [[(Int, Int)]] = [[(1, 8), (2, 16)], [(4, 0), (0, 32), (0, 5)], [(0, 32), (0, 0), (0, 9)], []]
        for (i, layers) in shapes.enumerated() {
            for task in [TaskHeadKind.classification(labels: 2), .regression, .span] {
                try assertMatchesOracle(EngineFixtures.model(layers, task: task, seed: 20 + UInt64(i)),
                                        lengths: [5, 1, 24, 13])
            }
        }
    }

    /// Small models stay on one thread; here every threaded path runs: row blocks, column blocks, sequence
    /// groups (balanced and not), with 2 and 3 workers (more than the pairs of a one-head single-sequence call,
    /// so query blocks split too).
    func testThreadedPathsMatchTrainingPath() throws {
        for task in [TaskHeadKind.classification(labels: 3), .span] {
            let model = EngineFixtures.model(Self.heterogeneous, task: task, seed: 13)
            for threads in [2, 3] {
                for split in [Split.rows, .columns, .groups] {
                    for lengths in [Self.mixedLengths, [24], [2, 1], [1, 1, 1, 1]] {
                        try assertMatchesOracle(model, lengths: lengths, threads: threads, split: split)
                    }
                }
            }
            // The BLAS backend (processors without AVX-512 in release builds) on the same splits.
            for split in [Split.rows, .columns, .groups] {
                try assertMatchesOracle(model, lengths: Self.mixedLengths, threads: 2, split: split, packed: false)
            }
        }
    }

    /// The program: where the [CLS] cut goes and how row-local work is grouped between attention steps.
    func testProgramCutsAfterTheLastAttentionKeysAndValues() throws {
        let model = EngineFixtures.model([(1, 8), (0, 16), (2, 0), (0, 4)], task: .regression)
        let steps = try InferenceEngine(model: model).program.map { step -> String in
            switch step {
            case .rows(let ops): return "rows(" + ops.map { "\($0)" }.joined(separator: ", ") + ")"
            case .attention(let l, let cls): return "attention(\(l)\(cls ? ", cls" : ""))"
            case .cutToCLS: return "cut"
            }
        }
        XCTAssertEqual(steps, [
            "rows(embed, queryKeyValue(0))", "attention(0)",
            "rows(attentionOutput(0), feedForward(0), feedForward(1), keyValue(2))", "cut", "rows(query(2))",
            "attention(2, cls)", "rows(attentionOutput(2), feedForward(3))",
        ])
        let span = EngineFixtures.model([(1, 8), (0, 0)], task: .span)
        XCTAssertEqual(try InferenceEngine(model: span).program.count, 3)
        let noAttention = EngineFixtures.model([(0, 8)], task: .classification(labels: 2))
        XCTAssertEqual(try InferenceEngine(model: noAttention).program.count, 3)  // embed, cut, FFN on [CLS] rows
    }

    func testDenseModelMatchesTrainingPath() throws {
        let model = EngineFixtures.model(Array(repeating: (4, 64), count: 3), task: .classification(labels: 2), seed: 4)
        try assertMatchesOracle(model, lengths: Self.mixedLengths)
    }

    /// One sequence per call equals the same sequences in one packed call.
    func testSingleSequenceCallsMatchPackedCall() throws {
        for task in [TaskHeadKind.classification(labels: 3), .span] {
            let model = EngineFixtures.model(Self.heterogeneous, task: task, seed: 5)
            let engine = try InferenceEngine(model: model)
            let inputs = EngineFixtures.inputs(lengths: Self.mixedLengths, shape: model.shape, seed: 2)
            let packed = try engine.run(inputs)
            let single = try inputs.flatMap { try engine.run([$0]) }
            XCTAssertLessThanOrEqual(EngineFixtures.maxDifference(packed, single), 1e-5)
            XCTAssertLessThanOrEqual(EngineFixtures.maxDifference(single, EngineFixtures.oracle(model, inputs)), 1e-5)
        }
    }

    /// The workspace grows to the largest call and is then reused; a call's result does not depend on what ran
    /// before it (bigger, then smaller, then bigger again).
    func testWorkspaceReuseGivesIdenticalResults() throws {
        let model = EngineFixtures.model(Self.heterogeneous, task: .span, seed: 6)
        let engine = try InferenceEngine(model: model)
        let big = EngineFixtures.inputs(lengths: Self.mixedLengths, shape: model.shape, seed: 3)
        let small = EngineFixtures.inputs(lengths: [4, 2], shape: model.shape, seed: 4)
        let first = try engine.run(big)
        XCTAssertEqual(engine.workspace.allocations, 1)
        let smallOut = try engine.run(small)
        let again = try engine.run(big)
        XCTAssertEqual(engine.workspace.allocations, 1, "a smaller call must reuse the workspace")
        XCTAssertEqual(first, again)
        let fresh = try InferenceEngine(model: model).run(small)
        XCTAssertEqual(smallOut, fresh)
        XCTAssertTrue(try engine.run([]).isEmpty)
    }

    /// A call bigger than one pass runs as consecutive passes of whole sequences, with the same answers.
    func testCallsBiggerThanOnePassRunInPasses() throws {
        for task in [TaskHeadKind.classification(labels: 2), .span] {
            let model = EngineFixtures.model(Self.heterogeneous, task: task, seed: 15)
            let engine = try InferenceEngine(model: model)
            engine.maxTokensPerPass = 30  // below the longest sequence too: that one runs alone
            let inputs = EngineFixtures.inputs(lengths: Self.mixedLengths, shape: model.shape, seed: 5)
            let got = try engine.run(inputs)
            XCTAssertLessThanOrEqual(EngineFixtures.maxDifference(got, EngineFixtures.oracle(model, inputs)), 1e-5)
            XCTAssertLessThanOrEqual(engine.workspace.tokenCapacity, 30)
        }
    }

    /// Calls from several threads at once are serialised by the engine's lock: each gets its own right answer.
    func testConcurrentCallsEachGetTheirOwnAnswer() throws {
        let model = EngineFixtures.model(Self.heterogeneous, task: .span, seed: 14)
        let engine = try InferenceEngine(model: model)
        let batches = (0..<6).map { i in
            EngineFixtures.inputs(lengths: Array(Self.mixedLengths.shuffled().prefix(2 + i)), shape: model.shape, seed: UInt64(i))
        }
        let want = try batches.map { try engine.run($0) }
        let results = UnsafeMutableBufferPointer<[SequenceOutput]>.allocate(capacity: batches.count)
        results.initialize(repeating: [])
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: batches.count) { i in results[i] = try! engine.run(batches[i]) }
        for i in batches.indices { XCTAssertEqual(results[i], want[i], "batch \(i)") }
    }

    func testRealMiniLMWithClassificationHeadMatchesTrainingPath() throws {
        let model = try RealMiniLM.load(task: .classification(labels: 2))
        let engine = try InferenceEngine(model: model)
        let inputs = EngineFixtures.inputs(lengths: [9, 3, 17], shape: model.shape, seed: 12)
        let d = EngineFixtures.maxDifference(try engine.run(inputs), EngineFixtures.oracle(model, inputs))
        print("engine vs training path, real all-MiniLM-L6-v2 + classifier: max abs diff \(d)")
        XCTAssertLessThanOrEqual(d, 1e-5)
    }

    // MARK: - Errors

    func testModelWithoutHeadIsRejected() {
        let model = BertModel.randomlyInitialized(config: EngineFixtures.config(layers: 1), task: nil, seed: 1)
        XCTAssertThrowsError(try InferenceEngine(model: model)) { error in
            XCTAssertTrue("\(error)".contains("no task head"), "\(error)")
        }
        let withHead = EngineFixtures.model([(1, 4)], task: .regression)
        XCTAssertThrowsError(try InferenceEngine(model: withHead, threads: 0)) { error in
            XCTAssertTrue("\(error)".contains("threads"), "\(error)")
        }
    }

    func testBadInputsNameTheInputAndWhatWasExpected() throws {
        let model = EngineFixtures.model([(1, 4)], task: .classification(labels: 2))
        let engine = try InferenceEngine(model: model)
        let ok = EncodedInput(tokenIds: [1, 2, 3])
        func message(_ inputs: [EncodedInput]) -> String {
            do { _ = try engine.run(inputs); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(message([ok, EncodedInput(tokenIds: [])]), "input 1: empty sequence (expected 1…24 tokens)")
        XCTAssertEqual(message([ok, ok, EncodedInput(tokenIds: Array(repeating: 1, count: 25))]),
                       "input 2: 25 tokens, more than the model's maximum of 24 positions")
        XCTAssertEqual(message([EncodedInput(tokenIds: [1, 61, 2])]),
                       "input 0, token 1: id 61 outside the vocabulary (expected 0..<61)")
        XCTAssertEqual(message([ok, EncodedInput(tokenIds: [-1])]),
                       "input 1, token 0: id -1 outside the vocabulary (expected 0..<61)")
        XCTAssertEqual(message([EncodedInput(tokenIds: [1, 2], tokenTypeIds: [0, 3])]),
                       "input 0, token 1: token-type id 3 outside the type vocabulary (expected 0..<3)")
        var mismatched = ok
        mismatched.tokenTypeIds = [0]
        XCTAssertEqual(message([mismatched]), "input 0: 1 token-type ids for 3 token ids (expected one per token)")
        // A rejected call leaves the engine usable.
        XCTAssertLessThanOrEqual(EngineFixtures.maxDifference(try engine.run([ok]), EngineFixtures.oracle(model, [ok])), 1e-5)
    }

    // MARK: - Kernels against their naive twins

    func randomArray(_ n: Int, _ rng: inout Xoshiro256, scale: Float = 1) -> [Float] {
        (0..<n).map { _ in scale * (2 * rng.nextUniform() - 1) }
    }

    /// `maxAbsDifference`: NaN when a value is NaN or infinite (the outputs start as NaN, so an unwritten one fails).
    func maxDiff(_ a: [Float], _ b: [Float]) -> Float { maxAbsDifference(a, b) }

    func testBiasGELUMatchesNaive() {
        var rng = Xoshiro256(seed: 1)
        let rows = 5, ldc = 29
        for columns in [0..<29, 3..<20, 0..<7] {
            let c0 = randomArray(rows * ldc, &rng, scale: 4), bias = randomArray(ldc, &rng)
            var c = c0
            c.withUnsafeMutableBufferPointer { cp in bias.withUnsafeBufferPointer { bp in
                EngineKernels.biasGELU(cp.baseAddress!, ldc: ldc, rows: 0..<rows, columns: columns, bias: bp.baseAddress!)
            } }
            var want = c0
            for r in 0..<rows {
                for j in columns { want[r * ldc + j] = EngineKernels.Naive.biasGELU([c0[r * ldc + j]], bias: [bias[j]])[0] }
            }
            let d = maxDiff(c, want)
            XCTAssertLessThanOrEqual(d, 2e-6, "columns \(columns)")
        }
    }

    func testBiasResidualLayerNormMatchesNaive() {
        var rng = Xoshiro256(seed: 2)
        for D in [1, 8, 21, 64] {
            let rows = 3
            let x0 = randomArray(rows * D, &rng, scale: 3), y = randomArray(rows * D, &rng), bias = randomArray(D, &rng)
            let gamma = randomArray(D, &rng), beta = randomArray(D, &rng)
            var x = x0
            x.withUnsafeMutableBufferPointer { xp in
                EngineKernels.biasResidualLayerNorm(xp.baseAddress!, adding: y, bias: bias, gamma: gamma, beta: beta,
                                                    rows: 0..<rows, width: D, eps: 1e-12)
            }
            var want: [Float] = []
            for r in 0..<rows {
                let s = (0..<D).map { x0[r * D + $0] + y[r * D + $0] + bias[$0] }
                want += EngineKernels.Naive.layerNorm(s, gamma: gamma, beta: beta, eps: 1e-12)
            }
            XCTAssertLessThanOrEqual(maxDiff(x, want), 1e-5, "D \(D)")
        }
    }

    func testEmbedMatchesNaive() {
        var rng = Xoshiro256(seed: 3)
        let D = 13, V = 7, P = 5, S = 2
        let word = randomArray(V * D, &rng), pos = randomArray(P * D, &rng), type = randomArray(S * D, &rng)
        let gamma = randomArray(D, &rng), beta = randomArray(D, &rng)
        let ids: [Int32] = [3, 0, 6, 2], positions: [Int32] = [0, 1, 4, 2], types: [Int32] = [1, 0, 0, 1]
        var x = [Float](repeating: 0, count: ids.count * D)
        x.withUnsafeMutableBufferPointer { xp in
            EngineKernels.embed(ids: ids, positions: positions, types: types, rows: 0..<ids.count, word: word,
                                position: pos, type: type, gamma: gamma, beta: beta, width: D, eps: 1e-12,
                                x: xp.baseAddress!)
        }
        var want: [Float] = []
        for r in ids.indices {
            let s = (0..<D).map { word[Int(ids[r]) * D + $0] + pos[Int(positions[r]) * D + $0] + type[Int(types[r]) * D + $0] }
            want += EngineKernels.Naive.layerNorm(s, gamma: gamma, beta: beta, eps: 1e-12)
        }
        XCTAssertLessThanOrEqual(maxDiff(x, want), 1e-5)
    }

    func testSoftmaxRowMatchesNaive() {
        var rng = Xoshiro256(seed: 6)
        for n in [1, 7, 8, 9, 16, 130] {
            let x0 = randomArray(n, &rng, scale: 30)
            var x = x0
            x.withUnsafeMutableBufferPointer { FastMath.softmax($0.baseAddress!, n) }
            XCTAssertLessThanOrEqual(maxDiff(x, EngineKernels.Naive.softmax(x0)), 1e-6, "n \(n)")
            XCTAssertEqual(x.reduce(0, +), 1, accuracy: 1e-5)
        }
    }

    /// On BLAS and on PackedGEMM (keys and values packed into scratch), with a head narrower than a panel and
    /// one wider (two value panels).
    func testAttentionHeadMatchesNaive() {
        var rng = Xoshiro256(seed: 4)
        for Dh in [8, 40] {
            let H = 3, ld = 3 * H * Dh
            for (T, nq) in [(1, 1), (5, 5), (17, 17), (17, 1), (40, 9)] {
                let qkv = randomArray(T * ld, &rng, scale: 2)
                for h in [0, 2] {
                    func slice(_ base: Int, rows: Int) -> [Float] {
                        (0..<rows).flatMap { r in (0..<Dh).map { qkv[r * ld + base + h * Dh + $0] } }
                    }
                    let want = EngineKernels.Naive.attention(q: slice(0, rows: nq), k: slice(H * Dh, rows: T),
                                                             v: slice(2 * H * Dh, rows: T), queries: nq, keys: T,
                                                             headDim: Dh, scale: 0.35)
                    for packed in [false, true] {
                        var ctx = [Float](repeating: .nan, count: nq * H * Dh)
                        var scores = [Float](repeating: 0, count: nq * T)
                        var scratch = [Float](repeating: .nan, count: EngineKernels.packedScratchCount(keys: T, headDim: Dh))
                        qkv.withUnsafeBufferPointer { p in
                            ctx.withUnsafeMutableBufferPointer { c in
                                scratch.withUnsafeMutableBufferPointer { sp in
                                    EngineKernels.attentionHead(q: p.baseAddress! + h * Dh, ldq: ld, queries: nq,
                                                                k: p.baseAddress! + H * Dh + h * Dh,
                                                                v: p.baseAddress! + 2 * H * Dh + h * Dh,
                                                                ldkv: ld, keys: T, headDim: Dh, scale: 0.35, scores: &scores,
                                                                ctx: c.baseAddress! + h * Dh, ldctx: H * Dh,
                                                                packed: packed ? sp.baseAddress! : nil)
                                }
                            }
                        }
                        let got = (0..<nq).flatMap { r in (0..<Dh).map { ctx[r * H * Dh + h * Dh + $0] } }
                        XCTAssertLessThanOrEqual(maxDiff(got, want), 1e-5, "T \(T), queries \(nq), head \(h), Dh \(Dh), packed \(packed)")
                        let others = (0..<nq).flatMap { r in (0..<(H * Dh)).filter { $0 / Dh != h }.map { ctx[r * H * Dh + $0] } }
                        XCTAssertTrue(others.allSatisfy(\.isNaN), "wrote outside head \(h)")
                    }
                }
            }
        }
    }

    /// The engine's threaded linear layer (column blocks, bias, GELU epilogue, a segment alone) against the naive
    /// product, on packed weights and on BLAS.
    func testLinearMatchesNaive() throws {
        var rng = Xoshiro256(seed: 5)
        let engine = try InferenceEngine(model: EngineFixtures.model([(1, 4)], task: .regression), threads: 2)
        engine.parallelGEMMWork = 0
        for (m, n, k) in [(1, 3, 5), (7, 33, 19), (200, 96, 80), (3, 700, 900)] {
            let a = randomArray(m * k, &rng), w = randomArray(n * k, &rng), bias = randomArray(n, &rng)
            var product = [Float](repeating: 0, count: m * n)
            BLAS.gemmNaive(transA: false, transB: true, m: m, n: n, k: k, a: a, lda: k, b: w, ldb: k, c: &product, ldc: n)
            for packed in [true, false] {
                // n = 3 · segment width when it divides, so a single segment runs alone too.
                let segments = n % 3 == 0 ? 3 : 1
                var layer = EngineWeights.Linear(n: n, k: k, segments: segments)
                let packedMatrix = w.withUnsafeBufferPointer { wp in
                    PackedMatrix(k: k, segments: (0..<segments).map { (wp.baseAddress! + $0 * (n / segments) * k, n / segments) })
                }
                defer { packedMatrix.deallocate() }
                let wCopy = UnsafeMutablePointer<Float>.allocate(capacity: w.count), bCopy = UnsafeMutablePointer<Float>.allocate(capacity: n)
                defer { wCopy.deallocate(); bCopy.deallocate() }
                wCopy.update(from: w, count: w.count)
                bCopy.update(from: bias, count: n)
                layer.packed = packed ? packedMatrix : nil
                layer.weightPointer = packed ? nil : UnsafePointer(wCopy)
                layer.biasPointer = UnsafePointer(bCopy)
                for gelu in [false, true] {
                    var c = [Float](repeating: .nan, count: m * n)
                    engine.linear(a, lda: k, m: m, layer, gelu: gelu, into: &c, ldc: n, threads: 2)
                    let want = (0..<(m * n)).map { i in
                        gelu ? EngineKernels.Naive.biasGELU([product[i]], bias: [bias[i % n]])[0] : product[i] + bias[i % n]
                    }
                    XCTAssertLessThanOrEqual(maxDiff(c, want), 1e-4, "m \(m) n \(n) k \(k) gelu \(gelu) packed \(packed)")
                }
                if segments == 3 {
                    var c = [Float](repeating: .nan, count: m * n)
                    engine.linear(a, lda: k, m: m, layer, segments: 1..<2, into: &c, ldc: n, threads: 2)
                    let s = n / 3
                    for r in 0..<m {
                        for j in 0..<n {
                            if (s..<(2 * s)).contains(j) {
                                XCTAssertEqual(c[r * n + j], product[r * n + j] + bias[j], accuracy: 1e-4)
                            } else {
                                XCTAssertTrue(c[r * n + j].isNaN, "segment 1 alone wrote column \(j)")
                            }
                        }
                    }
                }
            }
        }
    }
}

import BERT
import Foundation
import Tensor
import XCTest
import Tensor
@testable import CoFi

/// Compaction (cofi-spec §7, decision 5): the compact model's outputs equal the masked model's with the same
/// deterministic masks to ≤ 1e-4 max abs, on random masks and on every edge case of §7.3, for classification,
/// regression and span heads, on a tiny random model and on the real MiniLM cut to 2 layers; the compact model
/// has exactly the expected shapes and parameter counts; the compact checkpoint round-trips and its `cofi`
/// block is validated against the tensors.
final class CompactionTests: XCTestCase {
    // MARK: - Fixtures

    /// 4 layers, hidden 24, 4 heads of 6, FFN 20; initializer_range 0.2 so activations are far from trivial.
    static let tinyConfig = BertConfig(vocabSize: 40, hiddenSize: 24, numHiddenLayers: 4, numAttentionHeads: 4,
                                       intermediateSize: 20, maxPositionEmbeddings: 16, initializerRange: 0.2)
    static let tasks: [TaskHeadKind] = [.classification(labels: 3), .regression, .span]

    static func tinyModel(_ task: TaskHeadKind) -> BertModel {
        BertModel.randomlyInitialized(config: tinyConfig, task: task, seed: 11)
    }

    /// Three sequences of lengths 7, 4 and 2 padded to 7, the first a pair (token types 0 then 1).
    static func paddedBatch(vocab: Int, first: Int = 1) -> BertBatch {
        var rng = Xoshiro256(seed: 5)
        let T = 7, lengths = [7, 4, 2]
        var ids: [Int] = [], mask: [Int] = [], types: [Int] = []
        for len in lengths {
            for t in 0..<T {
                let real = t < len
                ids.append(real ? first + Int(rng.next() % UInt64(vocab - first)) : 0)
                mask.append(real ? 1 : 0)
                types.append(len == T && t >= 4 ? 1 : 0)
            }
        }
        return BertBatch(batch: lengths.count, seqLen: T, inputIds: ids, attentionMask: mask, tokenTypeIds: types)
    }

    /// Deterministic mask values per family, as plain numbers (nil: family or entry absent).
    struct Spec {
        var hidden: [Float]?
        var heads: [[Float]?]
        var attentionLayers: [Float?]
        var intermediate: [[Float]?]
        var ffnLayers: [Float?]

        init(layers L: Int) {
            heads = Array(repeating: nil, count: L)
            attentionLayers = Array(repeating: nil, count: L)
            intermediate = Array(repeating: nil, count: L)
            ffnLayers = Array(repeating: nil, count: L)
        }

        /// Soft values in [0.05, 1) for every family, at least one zero in each head / unit vector, binary
        /// hidden dims with a few (random) zeros; `shape` gives the sizes.
        static func random(_ shape: BertShape, seed: UInt64, zeroLayerGates: Bool = true) -> Spec {
            var rng = Xoshiro256(seed: seed)
            func soft(_ n: Int, zeroProbability: Float) -> [Float] {
                var v = (0..<n).map { _ in rng.nextUniform() < zeroProbability ? 0 : 0.05 + 0.95 * rng.nextUniform() }
                if n > 1 { v[Int(rng.next() % UInt64(n))] = 0 }
                return v
            }
            let L = shape.layers.count
            var s = Spec(layers: L)
            s.hidden = (0..<shape.hiddenSize).map { _ in rng.nextUniform() < 0.2 ? 0 : 1 }
            for l in 0..<L {
                if shape.layers[l].heads > 0 {
                    s.heads[l] = soft(shape.layers[l].heads, zeroProbability: 0.25)
                    s.attentionLayers[l] = 0.2 + 0.8 * rng.nextUniform()
                }
                if shape.layers[l].ffnWidth > 0 {
                    s.intermediate[l] = soft(shape.layers[l].ffnWidth, zeroProbability: 0.3)
                    s.ffnLayers[l] = 0.2 + 0.8 * rng.nextUniform()
                }
            }
            if zeroLayerGates, L >= 2 {
                s.attentionLayers[Int(rng.next() % UInt64(L))] = 0
                s.ffnLayers[Int(rng.next() % UInt64(L))] = 0
            }
            return s
        }

        var maskSet: MaskSet {
            func v(_ x: [Float]?) -> Variable? { x.map { Variable(Tensor(shape: [$0.count], scalars: $0)) } }
            var m = MaskSet(layerCount: heads.count)
            m.hidden = v(hidden)
            m.heads = heads.map(v)
            m.attentionLayers = attentionLayers.map { v($0.map { [$0] }) }
            m.intermediate = intermediate.map(v)
            m.ffnLayers = ffnLayers.map { v($0.map { [$0] }) }
            return m
        }

        /// The shape the cut model must have, written from the rules of §7 directly.
        func expectedShape(of model: BertModel) -> BertShape {
            let layers = model.shape.layers.enumerated().map { l, ls -> LayerShape in
                let heads = (attentionLayers[l] ?? 1) == 0 ? 0 : (heads[l]?.filter { $0 != 0 }.count ?? ls.heads)
                let units = (ffnLayers[l] ?? 1) == 0 ? 0 : (intermediate[l]?.filter { $0 != 0 }.count ?? ls.ffnWidth)
                return LayerShape(heads: ls.heads == 0 ? 0 : heads, ffnWidth: ls.ffnWidth == 0 ? 0 : units)
            }
            var s = model.shape
            s.hiddenSize = hidden?.filter { $0 != 0 }.count ?? s.hiddenSize
            s.layers = layers
            // Without a pooler (span head) the pooler width is the hidden width, as the loader infers it.
            if model.pooler == nil { s.poolerWidth = s.hiddenSize }
            return s
        }

        var keptHidden: [Int]? { hidden.map { h in h.indices.filter { h[$0] != 0 } } }
    }

    /// Every parameter of a model of `shape` with `task`, counted from the architecture.
    static func parameterCount(_ s: BertShape, task: TaskHeadKind?) -> Int {
        let D = s.hiddenSize, dh = s.headDim
        var n = (s.vocabSize + s.maxPositions + s.typeVocabSize) * D + 2 * D
        for l in s.layers {
            let hd = l.heads * dh
            if hd > 0 { n += 4 * D * hd + 3 * hd + D + 2 * D }
            if l.ffnWidth > 0 { n += 2 * D * l.ffnWidth + l.ffnWidth + D + 2 * D }
        }
        if task != .span { n += s.poolerWidth * D + s.poolerWidth }
        switch task {
        case .classification(let c)?: n += c * s.poolerWidth + c
        case .regression?: n += s.poolerWidth + 1
        case .span?: n += 2 * D + 2
        case nil: break
        }
        return n
    }

    /// The task outputs of a forward pass as one tensor (logits, or start and end logits side by side).
    static func taskOutput(_ out: BertOutput) -> Tensor {
        if let logits = out.logits { return logits.value }
        let s = out.startLogits!.value, e = out.endLogits!.value
        return Tensor(shape: [s.count + e.count], scalars: s.scalars + e.scalars)
    }

    /// Columns `keep` of a [N, D] tensor.
    static func columns(_ t: Tensor, _ keep: [Int]) -> Tensor {
        let D = t.shape[1]
        return Tensor(shape: [t.shape[0], keep.count],
                      scalars: (0..<t.shape[0]).flatMap { r in keep.map { t.scalars[r * D + $0] } })
    }

    /// How far the compact model's outputs and hidden states may be from the masked model's.
    static let tolerance: Float = 1e-4

    /// The masked model against its compaction on `batch`.
    struct Equivalence {
        var compact: CompactModel
        /// Max abs difference of the task outputs, and of every hidden state on the kept dims (NaN when either
        /// side holds a NaN or an infinity, `maxAbsDifference`'s rule).
        var outputs: Float, hiddenStates: Float
        /// Largest |masked output|.
        var magnitude: Float
        /// Both within `tolerance` (false for any NaN or infinity).
        var agree: Bool { outputs <= CompactionTests.tolerance && hiddenStates <= CompactionTests.tolerance }
    }

    /// Compacts `model` with `spec` and compares the outputs and every hidden state (on the kept dims) with the
    /// masked model's.
    static func equivalence(_ model: BertModel, _ spec: Spec, batch: BertBatch,
                            base: CompactLayout? = nil) throws -> Equivalence {
        let masks = spec.maskSet
        var mode = ForwardMode.inference
        let masked = model(batch, masks: masks, mode: &mode)
        let compact = try model.compacted(masks: masks, base: base)
        let cut = compact.model(batch, masks: nil, mode: &mode)
        let reference = Self.taskOutput(masked)
        let d = Self.taskOutput(cut).maxAbsDifference(reference)
        let keep = spec.keptHidden ?? Array(0..<model.shape.hiddenSize)
        var ours: [Float] = [], theirs: [Float] = []
        for (m, c) in zip(masked.hiddenStates, cut.hiddenStates) {
            let kept = Self.columns(m.value, keep)
            precondition(c.value.shape == kept.shape, "hidden state shapes differ: \(c.value.shape) vs \(kept.shape)")
            ours += c.value.scalars
            theirs += kept.scalars
        }
        return Equivalence(compact: compact, outputs: d, hiddenStates: maxAbsDifference(ours, theirs),
                           magnitude: reference.maxAbs)
    }

    /// Compacts `model` with `spec`, checks outputs (≤ 1e-4) and every hidden state on the kept dims, the shape
    /// and the parameter count, prints the max diffs, and returns the compact model.
    @discardableResult
    func assertEquivalent(_ model: BertModel, _ spec: Spec, batch: BertBatch, _ name: String,
                          base: CompactLayout? = nil) throws -> CompactModel {
        let e = try Self.equivalence(model, spec, batch: batch, base: base)
        let compact = e.compact

        let expected = spec.expectedShape(of: model)
        XCTAssertEqual(compact.model.shape, expected, "\(name): shape")
        let count = compact.model.namedParameters.reduce(0) { $0 + $1.1.value.count }
        XCTAssertEqual(count, Self.parameterCount(expected, task: model.task), "\(name): parameter count")
        XCTAssertEqual(compact.layout?.encoderParameters, expected.encoderParameters, "\(name): layout size")

        XCTAssertLessThanOrEqual(e.outputs, Self.tolerance, "\(name): outputs")
        XCTAssertLessThanOrEqual(e.hiddenStates, Self.tolerance, "\(name): hidden states on the kept dims")
        let layers = compact.model.shape.layers.map { "\($0.heads)/\($0.ffnWidth)" }.joined(separator: " ")
        print("compaction \(name): max abs diff \(e.outputs) (outputs up to \(e.magnitude)), hidden states \(e.hiddenStates); "
            + "heads/units per layer \(layers), hidden \(compact.model.shape.hiddenSize), params \(count)")
        return compact
    }

    /// A model with one NaN weight gives NaN outputs masked and compact alike; the comparison must report that
    /// as a failure (a `max` fold over the differences dropped it: `max(0, .nan)` is 0).
    func testNaNWeightFailsTheEquivalenceComparison() throws {
        let batch = Self.paddedBatch(vocab: Self.tinyConfig.vocabSize)
        for task in Self.tasks {
            let model = Self.tinyModel(task)
            let spec = Spec.random(model.shape, seed: 1)
            XCTAssertTrue(try Self.equivalence(model, spec, batch: batch).agree, "\(task): the model before the NaN agrees")
            // A kept hidden dim, so the NaN reaches the compact model too.
            let dim = try XCTUnwrap(spec.keptHidden?.first)
            let p = try XCTUnwrap(model.namedParameters.first { $0.0 == "bert.embeddings.LayerNorm.bias" }?.1)
            p.update { $0.scalars[dim] = .nan }
            let e = try Self.equivalence(model, spec, batch: batch)
            XCTAssertFalse(e.agree, "\(task): NaN outputs must not agree with anything")
            XCTAssertTrue(e.outputs.isNaN && e.hiddenStates.isNaN, "\(task): outputs \(e.outputs), hidden \(e.hiddenStates)")
        }
    }

    // MARK: - Equivalence on the tiny model

    func testRandomMasksAllHeads() throws {
        let batch = Self.paddedBatch(vocab: Self.tinyConfig.vocabSize)
        for task in Self.tasks {
            let model = Self.tinyModel(task)
            for seed: UInt64 in 1...4 {
                try assertEquivalent(model, .random(model.shape, seed: seed), batch: batch, "random seed \(seed) \(task)")
            }
            try assertEquivalent(model, .random(model.shape, seed: 9, zeroLayerGates: false), batch: batch,
                                 "random, no zero gates \(task)")
        }
    }

    /// The edge cases of cofi-spec §7.3 one at a time, then together, on top of random soft values.
    func testEdgeCasesAllHeads() throws {
        let batch = Self.paddedBatch(vocab: Self.tinyConfig.vocabSize)
        for task in Self.tasks {
            let model = Self.tinyModel(task)
            func base() -> Spec { .random(model.shape, seed: 21, zeroLayerGates: false) }
            var cases: [(String, Spec)] = []

            var s = base(); s.heads[0] = [0, 0, 0, 0]; s.attentionLayers[0] = 0.7
            cases.append(("all heads of layer 0 zero, MHA gate 0.7", s))
            s = base(); s.ffnLayers[1] = 0
            cases.append(("FFN gate of layer 1 zero", s))
            s = base(); s.intermediate[2] = Array(repeating: 0, count: 20); s.ffnLayers[2] = 0.8
            cases.append(("all FFN units of layer 2 zero, FFN gate 0.8", s))
            s = base(); s.attentionLayers[3] = 0
            cases.append(("MHA gate of layer 3 zero", s))
            s = base(); s.hidden = (0..<24).map { [0, 1, 2, 9, 23].contains($0) ? 0 : 1 }
            cases.append(("hidden dims 0, 1, 2, 9, 23 pruned", s))
            s = base(); s.attentionLayers[2] = 0; s.ffnLayers[2] = 0
            cases.append(("nothing left of layer 2", s))
            s = base()
            for l in 0..<4 {
                if l % 2 == 0 { s.ffnLayers[l] = 0 } else { s.intermediate[l] = Array(repeating: 0, count: 20) }
            }
            cases.append(("every FFN removed", s))
            s = base()
            for l in 0..<4 { s.attentionLayers[l] = 0; s.ffnLayers[l] = 0 }
            cases.append(("every layer removed", s))
            s = base()
            s.heads[0] = [0, 0, 0, 0]; s.attentionLayers[0] = 0.7
            s.ffnLayers[1] = 0
            s.intermediate[2] = Array(repeating: 0, count: 20)
            s.attentionLayers[3] = 0
            s.attentionLayers[1] = 0; s.ffnLayers[0] = 0  // layer 0 ends up empty too
            s.hidden = (0..<24).map { [0, 7, 8, 15].contains($0) ? 0 : 1 }
            cases.append(("all edge cases together", s))
            s = Spec(layers: 4); s.heads = base().heads; s.hidden = base().hidden
            cases.append(("only head and hidden masks", s))
            s = Spec(layers: 4); s.intermediate = base().intermediate; s.ffnLayers = base().ffnLayers
            cases.append(("only FFN masks", s))

            for (name, spec) in cases { try assertEquivalent(model, spec, batch: batch, "\(name) \(task)") }
        }
    }

    /// With no masks compaction is a copy: same shape, same values, same outputs.
    func testNoMasksIsIdentity() throws {
        let batch = Self.paddedBatch(vocab: Self.tinyConfig.vocabSize)
        let model = Self.tinyModel(.classification(labels: 3))
        let compact = try model.compacted(masks: nil)
        XCTAssertEqual(compact.model.shape, model.shape)
        for ((n1, a), (n2, b)) in zip(model.namedParameters, compact.model.namedParameters) {
            XCTAssertEqual(n1, n2)
            XCTAssertEqual(a.value, b.value, n1)
        }
        var mode = ForwardMode.inference
        XCTAssertEqual(model(batch, mode: &mode).logits!.value, compact.model(batch, mode: &mode).logits!.value)
        XCTAssertEqual(compact.layout?.sparsity, 0)
        XCTAssertEqual(compact.layout?.keptHidden, Array(0..<24))
    }

    /// A compact (heterogeneous) model compacted again: still equivalent, and the layout's indices stay in the
    /// original numbering through `base`.
    func testCompactingACompactModelComposesIndices() throws {
        let batch = Self.paddedBatch(vocab: Self.tinyConfig.vocabSize)
        for task in Self.tasks {
            let model = Self.tinyModel(task)
            let first = try assertEquivalent(model, .random(model.shape, seed: 3, zeroLayerGates: false), batch: batch,
                                             "first cut \(task)")
            let second = try assertEquivalent(first.model, .random(first.model.shape, seed: 4), batch: batch,
                                              "second cut of a heterogeneous model \(task)", base: first.layout)
            let a = try XCTUnwrap(first.layout), b = try XCTUnwrap(second.layout)
            XCTAssertTrue(Set(b.keptHidden).isSubset(of: a.keptHidden))
            for l in 0..<4 {
                XCTAssertTrue(Set(b.layers[l].keptHeads).isSubset(of: a.layers[l].keptHeads), "layer \(l) heads")
                XCTAssertTrue(Set(b.layers[l].keptFFNUnits).isSubset(of: a.layers[l].keptFFNUnits), "layer \(l) units")
            }
            try b.validate(shape: second.model.shape, config: second.model.config, file: "second")
        }
    }

    // MARK: - Equivalence on the real MiniLM, cut to 2 layers

    /// The whole all-MiniLM-L6-v2, loaded once for the three heads (fails clearly when the asset is missing).
    static let realFull = Result { () throws -> BertModel in
        let dir: URL
        if let assets = ProcessInfo.processInfo.environment["COFI_ASSETS"] {
            dir = URL(fileURLWithPath: assets).appendingPathComponent("all-MiniLM-L6-v2")
        } else {
            dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent(".assets/all-MiniLM-L6-v2")
        }
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path) else {
            throw CheckpointError("\(dir.path): the real model is missing; run `swift run cofi fetch` first")
        }
        return try BertModel.load(directory: dir)
    }

    /// all-MiniLM-L6-v2's first two layers, its pooler, and a random head (std 0.2, so logits are not tiny).
    static func realTwoLayer(_ task: TaskHeadKind) throws -> BertModel {
        let full = try realFull.get()
        var config = full.config
        config.numHiddenLayers = 2
        var shape = full.shape
        shape.layers = Array(shape.layers.prefix(2))
        var tensors: [String: Tensor] = [:]
        for (name, p) in full.namedParameters {
            if let range = name.range(of: #"encoder\.layer\.(\d+)\."#, options: .regularExpression) {
                let l = Int(name[range].dropFirst("encoder.layer.".count).dropLast())!
                if l >= 2 { continue }
            }
            if task == .span, name.hasPrefix("bert.pooler.") { continue }
            tensors[name] = p.value
        }
        var rng = Xoshiro256(seed: 99)
        let inWidth = task.usesPooler ? shape.poolerWidth : shape.hiddenSize
        tensors[task.checkpointPrefix + ".weight"] = .randomNormal(shape: [task.outputs, inWidth], std: 0.2, using: &rng)
        tensors[task.checkpointPrefix + ".bias"] = .randomNormal(shape: [task.outputs], std: 0.2, using: &rng)
        return try BertModel.assemble(config: config, shape: shape, task: task, tensors: tensors)
    }

    func testRealMiniLMTwoLayers() throws {
        var batch = Self.paddedBatch(vocab: 8000, first: 1000)
        var ids = batch.inputIds
        for b in 0..<3 { ids[b * 7] = 101 }  // [CLS]
        batch = BertBatch(batch: 3, seqLen: 7, inputIds: ids, attentionMask: batch.attentionMask,
                          tokenTypeIds: batch.tokenTypeIds)
        for task in Self.tasks {
            let model = try Self.realTwoLayer(task)
            XCTAssertEqual(model.shape.hiddenSize, 384)
            for seed: UInt64 in [1, 2] {
                var s = Spec.random(model.shape, seed: seed, zeroLayerGates: false)
                s.hidden![0] = 0
                try assertEquivalent(model, s, batch: batch, "MiniLM-2 random seed \(seed) \(task)")
            }
            var s = Spec.random(model.shape, seed: 3, zeroLayerGates: false)
            s.heads[0] = Array(repeating: 0, count: 12)
            s.ffnLayers[1] = 0
            s.hidden = (0..<384).map { $0 % 5 == 0 ? 0 : 1 }
            try assertEquivalent(model, s, batch: batch, "MiniLM-2 no heads in layer 0, no FFN in layer 1 \(task)")
        }
    }

    // MARK: - The checkpoint

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-compaction-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testSaveLoadRoundTripThroughTheNormalLoader() throws {
        let batch = Self.paddedBatch(vocab: Self.tinyConfig.vocabSize)
        for task in Self.tasks {
            let model = Self.tinyModel(task)
            var spec = Spec.random(model.shape, seed: 7)
            spec.hidden![0] = 0
            let source = CompactSource(sourceModel: "tiny", targetSparsity: 0.5, expectedSparsity: 0.48, note: "test")
            let compact = try model.compacted(masks: spec.maskSet, source: source)
            let dir = try temporaryDirectory()
            try compact.save(to: dir)

            // The ordinary loader: shapes from the tensors alone, head detected from them.
            let plain = try BertModel.load(directory: dir)
            XCTAssertEqual(plain.shape, compact.model.shape)
            XCTAssertEqual(plain.task, task)
            var mode = ForwardMode.inference
            let before = Self.taskOutput(compact.model(batch, mode: &mode))
            let after = Self.taskOutput(plain(batch, mode: &mode))
            XCTAssertEqual(after.maxAbsDifference(before), 0, "\(task): the same tensors give the same outputs")
            print("compaction round trip \(task): max abs diff \(after.maxAbsDifference(before))")

            let loaded = try CompactModel.load(directory: dir)
            XCTAssertEqual(loaded.layout, compact.layout)
            XCTAssertEqual(loaded.layout?.source, source)

            // The standard fields keep their dense values (the label fields describing the head); the cofi block
            // loads as the config's `compact`.
            let config = try BertConfig.load(from: dir.appendingPathComponent("config.json"))
            var expected = model.config.describingHead(task)
            expected.compact = compact.layout
            XCTAssertEqual(config, expected)
        }
    }

    /// The compaction writes the names of `namedParameters` (spelled out here from the cut shape, in order;
    /// `assemble` rejects a missing or extra tensor), and the loader reads them back with the same values.
    func testCompactionWritesTheNamesThatTheLoaderReads() throws {
        for task in Self.tasks {
            let model = Self.tinyModel(task)
            let compact = try model.compacted(masks: Spec.random(model.shape, seed: 13).maskSet)
            let shape = compact.model.shape
            XCTAssertTrue(shape.layers.contains { $0.heads == 0 } && shape.layers.contains { $0.ffnWidth == 0 },
                          "some sublayers are cut, so their names must be absent")
            func both(_ modules: [String]) -> [String] { modules.flatMap { [$0 + ".weight", $0 + ".bias"] } }
            var expected = ["bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
                            "bert.embeddings.token_type_embeddings.weight"] + both(["bert.embeddings.LayerNorm"])
            for (l, ls) in shape.layers.enumerated() {
                let pre = "bert.encoder.layer.\(l)."
                if ls.heads > 0 {
                    expected += both(["attention.self.query", "attention.self.key", "attention.self.value",
                                      "attention.output.dense", "attention.output.LayerNorm"].map { pre + $0 })
                }
                if ls.ffnWidth > 0 { expected += both(["intermediate.dense", "output.dense", "output.LayerNorm"].map { pre + $0 }) }
            }
            expected += task == .span ? both(["qa_outputs"]) : both(["bert.pooler.dense", "classifier"])
            XCTAssertEqual(compact.model.namedParameters.map(\.0), expected, "\(task)")

            let dir = try temporaryDirectory()
            try compact.save(to: dir)
            let file = try SafetensorsFile(contentsOf: dir.appendingPathComponent("model.safetensors"))
            XCTAssertEqual(file.names, expected.sorted(), "\(task): the file's names")
            let loaded = try BertModel.load(directory: dir)
            XCTAssertEqual(loaded.namedParameters.map(\.0), expected, "\(task): the loader's names")
            for ((name, p), (_, q)) in zip(compact.model.namedParameters, loaded.namedParameters) {
                XCTAssertEqual(q.name, name)
                XCTAssertEqual(p.value, q.value, "\(task): \(name)")
            }
        }
    }

    func testConfigJSONLayout() throws {
        let model = Self.tinyModel(.classification(labels: 3))
        var spec = Spec.random(model.shape, seed: 7)
        spec.attentionLayers[2] = 0
        let compact = try model.compacted(masks: spec.maskSet)
        let dir = try temporaryDirectory()
        try compact.save(to: dir)
        let text = try String(contentsOf: dir.appendingPathComponent("config.json"), encoding: .utf8)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        XCTAssertEqual(json["hidden_size"] as? Int, 24)
        XCTAssertEqual(json["num_attention_heads"] as? Int, 4)
        XCTAssertEqual(json["intermediate_size"] as? Int, 20)
        XCTAssertEqual(json["initializer_range"] as? Double, 0.2)
        let cofi = try XCTUnwrap(json["cofi"] as? [String: Any])
        XCTAssertEqual(cofi["kept_hidden_indices"] as? [Int], spec.keptHidden)
        let layers = try XCTUnwrap(cofi["layers"] as? [[String: Any]])
        XCTAssertEqual(layers[2]["kept_heads"] as? [Int], [])
        XCTAssertEqual(layers[2]["num_heads"] as? Int, 0)
        XCTAssertEqual(layers[0]["kept_heads"] as? [Int], spec.heads[0]!.indices.filter { spec.heads[0]![$0] != 0 })
        XCTAssertTrue(text.contains("\"initializer_range\": 0.2,"), "numbers in their shortest form")
        XCTAssertTrue(text.contains("\"kept_hidden_indices\": ["), "index arrays on one line")
    }

    /// The cut tensors without their `cofi` block are refused (they used to load as whatever the tensors held): a
    /// narrower hidden width, or an absent sublayer, must be declared by the block.
    func testCheckpointWithoutCofiBlockIsRefused() throws {
        let model = Self.tinyModel(.span)
        let spec = Spec.random(model.shape, seed: 8)
        let dir = try temporaryDirectory()
        try CompactModel(model: try model.compacted(masks: spec.maskSet).model, layout: nil).save(to: dir)
        XCTAssertThrowsError(try CompactModel.load(directory: dir)) {
            XCTAssertTrue("\($0)".contains("word_embeddings.weight' is"), "\($0)")
            XCTAssertTrue("\($0)".contains("needs the cofi block"), "\($0)")
        }
        // The hidden width kept whole, an FFN sublayer cut: the missing tensor is named.
        var plain = Spec(layers: model.shape.layers.count)
        plain.ffnLayers[1] = 0
        try CompactModel(model: try model.compacted(masks: plain.maskSet).model, layout: nil).save(to: dir)
        XCTAssertThrowsError(try BertModel.load(directory: dir)) {
            XCTAssertTrue("\($0)".contains("missing tensor 'bert.encoder.layer.1.output.dense.weight'"), "\($0)")
            XCTAssertTrue("\($0)".contains("no cofi block"), "\($0)")
        }
    }

    /// A `cofi` block that disagrees with the tensors, or is malformed, fails naming the field.
    func testTamperedCofiBlockNamesTheField() throws {
        let model = Self.tinyModel(.classification(labels: 3))
        var spec = Spec.random(model.shape, seed: 12, zeroLayerGates: false)
        spec.heads[1] = [0.5, 0, 0.9, 0]
        let dir = try temporaryDirectory()
        try model.compacted(masks: spec.maskSet).save(to: dir)
        let url = dir.appendingPathComponent("config.json")
        let pristine = try Data(contentsOf: url)

        func expectError(_ field: String, _ fragment: String, edit: (inout [String: Any]) -> Void,
                         line: UInt = #line) throws {
            var json = try JSONSerialization.jsonObject(with: pristine) as! [String: Any]
            var cofi = json["cofi"] as! [String: Any]
            edit(&cofi)
            json["cofi"] = cofi
            try JSONSerialization.data(withJSONObject: json).write(to: url)
            XCTAssertThrowsError(try CompactModel.load(directory: dir), line: line) { error in
                guard let e = error as? CompactFormatError else {
                    return XCTFail("expected a CompactFormatError, got \(error)", line: line)
                }
                print("compaction format error: \(e)")
                XCTAssertEqual(e.field, field, "\(e)", line: line)
                XCTAssertTrue(e.description.contains(fragment), "\(e)", line: line)
                XCTAssertTrue(e.description.contains("config.json"), "\(e)", line: line)
            }
        }
        func layer(_ cofi: inout [String: Any], _ l: Int, _ edit: (inout [String: Any]) -> Void) {
            var layers = cofi["layers"] as! [[String: Any]]
            edit(&layers[l])
            cofi["layers"] = layers
        }
        try expectError("cofi.layers[1].kept_heads", "the tensors hold 2") { c in
            layer(&c, 1) { $0["kept_heads"] = [0, 1, 2]; $0["num_heads"] = 3 }
        }
        try expectError("cofi.layers[1].num_heads", "kept_heads lists 2") { c in layer(&c, 1) { $0["num_heads"] = 3 } }
        try expectError("cofi.layers[3].kept_ffn_units", "the tensors hold") { c in
            layer(&c, 3) { l in
                let units = l["kept_ffn_units"] as! [Int]
                l["kept_ffn_units"] = Array(units.dropLast()); l["ffn_width"] = units.count - 1
            }
        }
        try expectError("cofi.layers[1].kept_heads", "entry 1 is 0 after 2") { c in
            layer(&c, 1) { l in l["kept_heads"] = Array((l["kept_heads"] as! [Int]).reversed()) }
        }
        try expectError("cofi.layers[2].kept_ffn_units", "outside [0, original_intermediate_size = 20)") { c in
            layer(&c, 2) { l in
                var units = l["kept_ffn_units"] as! [Int]
                units[units.count - 1] = 20
                l["kept_ffn_units"] = units
            }
        }
        try expectError("cofi.hidden_size", "the tensors are") { c in
            let kept = c["kept_hidden_indices"] as! [Int]
            c["kept_hidden_indices"] = Array(kept.dropLast()); c["hidden_size"] = kept.count - 1
        }
        try expectError("cofi.original_hidden_size", "hidden_size is 24") { c in c["original_hidden_size"] = 32 }
        try expectError("cofi.layers", "missing required key") { c in c["layers"] = nil }
        try expectError("cofi.layers[0].kept_ffn_units", "expected") { c in layer(&c, 0) { $0["kept_ffn_units"] = "all" } }
        try expectError("cofi.sparsity", "1 − prunable_parameters") { c in c["sparsity"] = 0.99 }
        try expectError("cofi.format_version", "reads format 1") { c in c["format_version"] = 2 }
    }

    func testMasksThatCannotBeCompactedExactly() throws {
        let model = Self.tinyModel(.classification(labels: 3))
        func expectError(_ fragment: String, _ edit: (inout Spec) -> Void, line: UInt = #line) {
            var s = Spec.random(model.shape, seed: 1)
            edit(&s)
            XCTAssertThrowsError(try model.compacted(masks: s.maskSet), line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)", line: line)
            }
        }
        expectError("mask 'hidden_z' dim 3 is 0.996") { $0.hidden![3] = 0.996 }
        expectError("mask 'layer.1.head_z' has 5 values, expected 4") { $0.heads[1] = [1, 1, 1, 1, 1] }
        var m = Spec.random(model.shape, seed: 1).maskSet
        m.ffnLayers[2] = Variable(Tensor(shape: [2], scalars: [1, 1]))
        XCTAssertThrowsError(try model.compacted(masks: m)) { error in
            XCTAssertTrue("\(error)".contains("mask 'layer.2.mlp_z' has 2 values, expected 1"), "\(error)")
        }
        expectError("mask 'layer.0.intermediate_z' value 4 is nan") { $0.intermediate[0]![4] = .nan }
        expectError("zeroes every one of the 24 hidden dims") { $0.hidden = Array(repeating: 0, count: 24) }
    }
}

import CoFi
import Foundation
import Generation
import Llama
import Tasks
import Tensor
import TestSupport
import XCTest
@testable import Shearing

/// `cofi shear` on a tiny random LLaMA (4 layers, width 16, 6 query heads on 3 KV heads, FFN 24): the target shape
/// exactly, masked ≡ compact, outputs that reload, the baselines on the same tokens, the bad inputs; the gates, the
/// Lagrangian and dynamic batch loading on their own.
final class ShearingTests: XCTestCase {
    static let text = """
        The tutorial introduces the reader informally to the basic concepts and features of the language. \
        It helps to have an interpreter handy for hands-on experience, but all examples are self-contained, \
        so the tutorial can be read off-line as well. For a description of standard objects and modules, \
        see the library reference. The reference manual gives a more formal definition of the language.
        """

    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("shear-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A tiny model directory and three text sources.
    func fixture() throws -> (model: URL, texts: [URL], config: LlamaConfig) {
        let t = try TinyLanguageModel.tokenizer()
        var c = TinyLanguageModel.config(vocabSize: t.tokens.count)
        c.numHiddenLayers = 4
        c.numAttentionHeads = 6
        c.numKeyValueHeads = 3
        c.maxPositionEmbeddings = 64
        let lm = LanguageModel(model: LlamaModel.random(config: c, seed: 21, std: 0.3), tokenizer: t, source: URL(fileURLWithPath: "tiny"))
        let modelDir = dir.appendingPathComponent("source")
        try lm.saveHuggingFace(to: modelDir)
        var texts: [URL] = []
        for (i, name) in ["prose", "upper", "reversed"].enumerated() {
            let body = [Self.text, Self.text.uppercased(), String(Self.text.reversed())][i]
            let url = dir.appendingPathComponent("\(name).txt")
            try body.write(to: url, atomically: true, encoding: .utf8)
            texts.append(url)
        }
        return (modelDir, texts, c)
    }

    func settings(_ f: (model: URL, texts: [URL], config: LlamaConfig), out: String, initialization: ShearInitialization = .sheared) throws -> ShearSettings {
        var s = ShearSettings(model: f.model.path, target: try TargetShape.parse("layers=2,hidden=8,heads=4,kv-heads=2,ffn=12", source: f.config),
                              texts: f.texts.map(\.path), out: dir.appendingPathComponent(out).path)
        s.initialization = initialization
        s.seqLen = 16
        s.batch = 2
        s.pruneSteps = 40
        s.trainSteps = 6
        s.evalEvery = 5
        s.evalSequences = 2
        s.maskLearningRate = 0.2
        s.evalText = f.texts[0].path
        return s
    }

    func testShearedRunReachesTheTargetShapeAndItsOutputsReload() throws {
        let f = try fixture()
        let s = try settings(f, out: "sheared")
        let report = try ShearJob(settings: s) { _ in }.run()
        let target = s.target.llamaShape(source: f.config)
        XCTAssertEqual(report.stages.map(\.name), ["source", "pruned", "trained"])
        XCTAssertEqual(report.stages[1].parameters, target.parameterCount)
        XCTAssertEqual(report.stages[2].parameters, target.parameterCount)
        XCTAssertEqual(report.stages[1].shape, "layers=2,hidden=8,heads=4,kv-heads=2,ffn=12")
        let d = try XCTUnwrap(report.maskedVsCompact)
        XCTAssertTrue(d <= 1e-4, "masked vs compact \(d)")
        // The Lagrangian moved the gates towards the target: fewer expected layers, groups, units and dims.
        let counts = try XCTUnwrap(report.expectedCountsAtCut)
        print("expected counts at the cut: \(counts)")
        XCTAssertLessThan(counts["layers"]!, 3.9)
        XCTAssertLessThan(counts["heads"]!, 2.95)
        XCTAssertLessThan(counts["ffn"]!, 23.5)
        XCTAssertLessThan(counts["hidden"]!, 15.8)
        XCTAssertEqual(report.trainTokens, 6 * 2 * 16)
        XCTAssertFalse(report.sourceWeights.isEmpty)
        for w in report.sourceWeights { XCTAssertEqual(w.values.reduce(0, +), 1, accuracy: 1e-9) }
        // Both outputs reload with the target shape and the same logits.
        let out = URL(fileURLWithPath: s.out)
        let hf = try LanguageModel.open(out.appendingPathComponent("model"))
        let gguf = try LanguageModel.open(out.appendingPathComponent("model.gguf"))
        XCTAssertEqual(hf.model.shape, target)
        XCTAssertEqual(gguf.model.shape, target)
        let batch = LlamaBatch(batch: 1, seqLen: 10, tokenIds: Array(hf.tokenizer.encodeIDs(Self.text).prefix(10)))
        let a = withoutGradients { hf.model.forward(batch).value.scalars }
        let b = withoutGradients { gguf.model.forward(batch).value.scalars }
        XCTAssertEqual(maxAbsDifference(a, b), 0)
        for file in ["report.md", "report.json", "metrics.jsonl", "train-order.jsonl"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), file)
        }
        let md = try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("| pruned | layers=2,hidden=8,heads=4,kv-heads=2,ffn=12 |"), md)

        // The baselines, replaying the sheared run's continued-training data order.
        for initialization in [ShearInitialization.truncated, .random] {
            var b = try settings(f, out: initialization.rawValue, initialization: initialization)
            b.sameTokensAs = s.out
            let r = try ShearJob(settings: b) { _ in }.run()
            XCTAssertEqual(r.stages.map(\.name), ["source", initialization.rawValue, "trained"])
            XCTAssertEqual(r.stages[2].parameters, target.parameterCount)
            let order = { (run: String) in try String(contentsOf: URL(fileURLWithPath: run).appendingPathComponent("train-order.jsonl"), encoding: .utf8) }
            XCTAssertEqual(try order(b.out), try order(s.out), "\(initialization) saw other tokens")
        }
    }

    /// The truncation baseline keeps the first structures at full value: its logits equal the source's own
    /// forward under masks of ones on those structures.
    func testTruncationKeepsTheFirstStructures() throws {
        let f = try fixture()
        let source = try LanguageModel.open(f.model)
        let t = try TargetShape.parse("layers=2,hidden=8,heads=4,ffn=12", source: f.config)
        let masks = ShearJob.truncation(f.config, t)
        let cut = source.model.compacted(masks: masks)
        XCTAssertEqual(cut.shape, t.llamaShape(source: f.config))
        let e = source.model.embedTokens.value.scalars, ce = cut.embedTokens.value.scalars
        XCTAssertEqual(ce[0..<8].map { $0 }, Array(e[0..<8]))            // token 0, dims 0..<8
        XCTAssertEqual(cut.layers[1].attention!.q.value.scalars[0], source.model.layers[1].attention!.q.value.scalars[0])
    }

    func testBadInputsAreRefusedBeforeTraining() throws {
        let f = try fixture()
        let c = f.config
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(message { _ = try TargetShape.parse("layers=5,hidden=8,heads=4,ffn=12", source: c) }
            .contains("layers=5 is larger than the source model's 4"))
        XCTAssertTrue(message { _ = try TargetShape.parse("layers=2,hidden=8,heads=3,ffn=12", source: c) }
            .contains("not whole key/value groups"))
        XCTAssertTrue(message { _ = try TargetShape.parse("layers=2,hidden=8,heads=4,kv-heads=1,ffn=12", source: c) }
            .contains("not whole key/value groups"))
        XCTAssertTrue(message { _ = try TargetShape.parse("layers=2,hidden=8,heads=4", source: c) }.contains("'ffn' is missing"))
        XCTAssertTrue(message { _ = try TargetShape.parse("layers=2,width=8,heads=4,ffn=12", source: c) }.contains("unknown key 'width'"))
        XCTAssertTrue(message { _ = try TargetShape.parse("layers=0,hidden=8,heads=4,ffn=12", source: c) }.contains("not a positive whole number"))
        // Text sources: empty, not UTF-8, too short.
        let empty = dir.appendingPathComponent("empty.txt"), binary = dir.appendingPathComponent("binary.txt")
        let short = dir.appendingPathComponent("short.txt")
        try "  \n ".write(to: empty, atomically: true, encoding: .utf8)
        try Data([0x66, 0xFF, 0xFE, 0x80]).write(to: binary)
        try "a few words".write(to: short, atomically: true, encoding: .utf8)
        for (url, expected) in [(empty, "the file is empty"), (binary, "not UTF-8"), (short, "each source needs at least 2")] {
            var s = try settings(f, out: "bad-\(url.lastPathComponent)")
            s.texts = [f.texts[0].path, url.path]
            let m = message { _ = try ShearJob(settings: s) { _ in }.run() }
            XCTAssertTrue(m.contains(url.path) && m.contains(expected), m)
            XCTAssertFalse(FileManager.default.fileExists(atPath: s.out), "an output directory was made before the error")
        }
        // A non-empty output directory without --force.
        var s = try settings(f, out: "busy")
        try FileManager.default.createDirectory(atPath: s.out, withIntermediateDirectories: true)
        try "x".write(toFile: s.out + "/keep.txt", atomically: true, encoding: .utf8)
        XCTAssertTrue(message { _ = try ShearJob(settings: s) { _ in }.run() }.contains("is not empty"))
        s.force = true
        s.pruneSteps = 0
        s.trainSteps = 0
        XCTAssertNoThrow(try ShearJob(settings: s) { _ in }.run())
    }

    /// The deterministic masks keep exactly the target's counts, whatever the gates say, at their soft values.
    func testDeterministicMasksKeepTheTargetCounts() throws {
        let c = try fixture().config
        let t = try TargetShape.parse("layers=3,hidden=10,heads=2,ffn=7", source: c)
        let gates = ShearGates(source: c, target: t)
        var rng = Xoshiro256(seed: 5)
        for la in [gates.layers, gates.heads, gates.ffn, gates.hidden] {
            la.assign(Tensor(shape: la.value.shape, scalars: la.value.scalars.map { _ in 8 * rng.nextUniform() - 4 }))
        }
        let m = gates.deterministic()
        func nonzero(_ v: Variable?) -> Int { v!.value.scalars.filter { $0 != 0 }.count }
        XCTAssertEqual(nonzero(m.hidden), 10)
        XCTAssertEqual(m.layers.map { nonzero($0) }.reduce(0, +), 3)
        for l in 0..<4 {
            XCTAssertEqual(nonzero(m.heads[l]), 1)
            XCTAssertEqual(nonzero(m.intermediate[l]), 7)
        }
        // Kept values are the soft values of their gates.
        let kept = m.hidden!.value.scalars.enumerated().first { $0.element != 0 }!
        XCTAssertEqual(kept.element, HardConcrete.softValue(gates.hidden.value.scalars[kept.offset]))
    }

    /// DoReMi's update by hand, and a sampler that follows its weights.
    func testDynamicBatchLoading() {
        let w = [0.5, 0.3, 0.2], losses = [2.0, 3.5, 1.0], refs = [2.0, 2.5, 1.5]
        let logits = [log(0.5) + 0, log(0.3) + 1, log(0.2) - 0.5]
        let e = logits.map(exp), s = e.reduce(0, +)
        let byHand = e.map { (1 - 1e-4) * $0 / s + 1e-4 / 3 }
        let got = DomainSampler.updated(w, losses: losses, references: refs)
        for i in 0..<3 { XCTAssertEqual(got[i], byHand[i] / byHand.reduce(0, +), accuracy: 1e-12) }
        XCTAssertGreaterThan(got[1], w[1])   // the source furthest behind its reference gains
        var sampler = DomainSampler(sizes: [5, 7, 3], references: refs, weights: [0.7, 0.2, 0.1])
        var rng = Xoshiro256(seed: 8)
        let picks = sampler.next(3000, rng: &rng)
        let share = (0..<3).map { i in Double(picks.filter { $0.source == i }.count) / 3000 }
        XCTAssertEqual(share[0], 0.7, accuracy: 0.03)
        XCTAssertEqual(share[2], 0.1, accuracy: 0.03)
        // Within a source, every sequence once per pass.
        let firstPass = picks.filter { $0.source == 1 }.prefix(7).map(\.index).sorted()
        XCTAssertEqual(firstPass, Array(0..<7))
    }
}

/// Checkpoints: a run stopped mid-pruning and again mid-training, then resumed, ends with the same weights, report
/// numbers and data order as the run that was never stopped.
extension ShearingTests {
    func testResumedRunEqualsTheUninterruptedOne() throws {
        let base = self
        let f = try base.fixture()
        var whole = try base.settings(f, out: "whole")
        whole.pruneSteps = 12
        whole.trainSteps = 8
        whole.checkpointEvery = 4
        let a = try ShearJob(settings: whole) { _ in }.run()

        var cut = whole
        cut.out = base.dir.appendingPathComponent("cut").path
        for stop in [7, 15] {   // inside pruning (after step 7), inside training (global 15 = train step 3)
            var s = cut
            s.stopAfterSteps = stop
            s.resume = stop != 7
            _ = try ShearJob(settings: s) { _ in }.run()
            XCTAssertFalse(FileManager.default.fileExists(atPath: s.out + "/model.gguf"), "stopped run \(stop) finished")
        }
        cut.resume = true
        let b = try ShearJob(settings: cut) { _ in }.run()

        let ma = try LanguageModel.open(URL(fileURLWithPath: whole.out + "/model")).model
        let mb = try LanguageModel.open(URL(fileURLWithPath: cut.out + "/model")).model
        for ((name, va), (_, vb)) in zip(ma.namedParameters, mb.namedParameters) {
            XCTAssertEqual(va.value.scalars, vb.value.scalars, "\(name) differs after resuming")
        }
        XCTAssertEqual(a.maskedVsCompact, b.maskedVsCompact)
        XCTAssertEqual(a.stages.map { $0.heldOutLoss }, b.stages.map { $0.heldOutLoss })
        XCTAssertEqual(a.sourceWeights, b.sourceWeights)
        XCTAssertEqual(a.trainTokens, b.trainTokens)
        let order = { (dir: String) in try String(contentsOf: URL(fileURLWithPath: dir + "/train-order.jsonl"), encoding: .utf8) }
        XCTAssertEqual(try order(whole.out), try order(cut.out))
        // Resuming with other arguments is refused.
        var other = cut
        other.batch = 3
        XCTAssertThrowsError(try ShearJob(settings: other) { _ in }.run()) { XCTAssertTrue("\($0)".contains("--batch differs"), "\($0)") }
    }
}

import BERT
import Foundation
import ONNXExport
import SwiftProtobuf
import Tensor
import XCTest

/// The ONNX export: the graph's structure (read back with SwiftProtobuf), and the round trip — ONNX Runtime's
/// outputs against the training-path forward on padded batches, ≤ 1e-4 — where a Python with onnx and onnxruntime
/// is found (`.venv-onnx`, made by `.ci/run`; `.venv-peer`; or `COFI_ONNX_PYTHON`).
final class ONNXExportTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// A small config: hidden 16 (2 heads of 8), FFN 24, 3 layers, vocabulary 50, 3 labels.
    static func config(layers: Int = 3, labels: Int = 3) -> BertConfig {
        BertConfig(vocabSize: 50, hiddenSize: 16, numHiddenLayers: layers, numAttentionHeads: 2, intermediateSize: 24,
                   maxPositionEmbeddings: 20, typeVocabSize: 2, layerNormEps: 1e-12,
                   id2label: Dictionary(uniqueKeysWithValues: (0..<labels).map { ("\($0)", "class \($0)") }),
                   label2id: Dictionary(uniqueKeysWithValues: (0..<labels).map { ("class \($0)", $0) }))
    }

    /// A seeded random model of per-layer `heads`/`ffn` and hidden width `hidden`, its biases and LayerNorms
    /// perturbed (so a dropped bias or gain shows).
    static func model(heads: [Int], ffn: [Int], hidden: Int = 16, task: TaskHeadKind?, seed: UInt64 = 7) -> BertModel {
        let c = config(layers: heads.count, labels: { if case .classification(let n) = task { return n }; return 3 }())
        let shape = BertShape(vocabSize: c.vocabSize, hiddenSize: hidden, headDim: 8, maxPositions: 20, typeVocabSize: 2,
                              layers: zip(heads, ffn).map { LayerShape(heads: $0, ffnWidth: $1) }, poolerWidth: 16)
        let m = BertModel.randomlyInitialized(config: c, shape: shape, task: task, seed: seed)
        var rng = Xoshiro256(seed: seed &+ 1)
        for (name, p) in m.namedParameters {
            var t = p.value
            let gain = name.hasSuffix("LayerNorm.weight")
            for i in t.scalars.indices {
                t.scalars[i] = gain ? 1 + 0.4 * (rng.nextUniform() - 0.5) : t.scalars[i] * 20 + 0.2 * (rng.nextUniform() - 0.5)
            }
            p.assign(t)
        }
        return m
    }

    /// Shapes with every case the graph has: pruned hidden width, uneven heads, a layer without attention, one
    /// without FFN, an empty layer, the last attention layer early (the [CLS] cut before FFN-only layers).
    static let cases: [(name: String, heads: [Int], ffn: [Int], hidden: Int)] = [
        ("dense", [2, 2, 2], [24, 24, 24], 16),
        ("compact", [1, 0, 2], [10, 7, 0], 11),
        ("cut early", [2, 1, 0], [0, 24, 5], 16),
        ("empty layer", [0, 2, 0], [0, 3, 0], 9),
        ("no attention", [0, 0, 0], [6, 0, 2], 12),
    ]

    func exported(_ m: BertModel) throws -> Onnx_ModelProto {
        let proto = try ONNXExporter.model(m, name: "test")
        let bytes: [UInt8] = try proto.serializedBytes()
        return try Onnx_ModelProto(serializedBytes: bytes)
    }

    func testGraphStructure() throws {
        for c in Self.cases {
            for task in [TaskHeadKind.classification(labels: 3), .regression, .span, nil] {
                let m = Self.model(heads: c.heads, ffn: c.ffn, hidden: c.hidden, task: task)
                let proto = try exported(m)
                let what = "\(c.name), \(task.map { "\($0)" } ?? "no head")"
                XCTAssertEqual(proto.opsetImport.map(\.version), [17], what)
                XCTAssertEqual(proto.irVersion, 8, what)
                let g = proto.graph
                XCTAssertEqual(g.input.map(\.name), ["input_ids", "attention_mask", "token_type_ids"], what)
                for input in g.input {
                    XCTAssertEqual(input.type.tensorType.shape.dim.map(\.dimParam), ["batch", "sequence"], what)
                    XCTAssertEqual(input.type.tensorType.elemType, Int32(Onnx_TensorProto.DataType.int64.rawValue), what)
                }
                let outputs: [String: [String]] = Dictionary(uniqueKeysWithValues: g.output.map {
                    ($0.name, $0.type.tensorType.shape.dim.map { $0.dimParam.isEmpty ? "\($0.dimValue)" : $0.dimParam })
                })
                switch task {
                case .classification?: XCTAssertEqual(outputs, ["logits": ["batch", "3"]], what)
                case .regression?: XCTAssertEqual(outputs, ["logits": ["batch", "1"]], what)
                case .span?: XCTAssertEqual(outputs, ["start_logits": ["batch", "sequence"], "end_logits": ["batch", "sequence"]], what)
                case nil: XCTAssertEqual(outputs, ["last_hidden_state": ["batch", "sequence", "\(c.hidden)"], "pooler_output": ["batch", "16"]], what)
                }
                // Every value is defined before it is used, once; every output is made.
                var defined = Set(g.input.map(\.name) + g.initializer.map(\.name))
                XCTAssertEqual(defined.count, g.input.count + g.initializer.count, "\(what): a name defined twice")
                for node in g.node {
                    for i in node.input { XCTAssertTrue(defined.contains(i), "\(what): \(node.opType) reads \(i) before it is made") }
                    for o in node.output { XCTAssertTrue(defined.insert(o).inserted, "\(what): \(o) made twice") }
                }
                for o in g.output { XCTAssertTrue(defined.contains(o.name), "\(what): output \(o.name) is never made") }
                // A sublayer with nothing left is absent: one softmax per attention sublayer, one erf per FFN.
                let count = { (op: String) in g.node.filter { $0.opType == op }.count }
                XCTAssertEqual(count("Softmax"), c.heads.filter { $0 > 0 }.count, what)
                XCTAssertEqual(count("Erf"), c.ffn.filter { $0 > 0 }.count, what)
                XCTAssertEqual(count("LayerNormalization"), 1 + c.heads.filter { $0 > 0 }.count + c.ffn.filter { $0 > 0 }.count, what)
                // Every parameter is an initializer of its own shape (linear weights transposed to [in, out]).
                let initializers = Dictionary(uniqueKeysWithValues: g.initializer.map { ($0.name, $0) })
                for (name, p) in m.namedParameters {
                    let key = name.hasPrefix("bert.") ? String(name.dropFirst(5)) : name
                    guard let t = initializers[key] else { XCTFail("\(what): no initializer \(key)"); continue }
                    let expected = p.shape.count == 2 && !key.contains("embeddings") ? [p.shape[1], p.shape[0]] : p.shape
                    XCTAssertEqual(t.dims.map(Int.init), expected, "\(what): \(key)")
                    XCTAssertEqual(t.rawData.count, p.value.scalars.count * 4, "\(what): \(key)")
                }
                XCTAssertEqual(proto.metadataProps.first { $0.key == "id2label" }?.value,
                               task == .classification(labels: 3) ? #"{"0":"class 0","1":"class 1","2":"class 2"}"# : nil, what)
                XCTAssertNotNil(proto.metadataProps.first { $0.key == "cofi.config" }, what)
            }
        }
    }

    func testErrors() throws {
        var c = Self.config()
        c.hiddenAct = "relu"
        let m = BertModel.randomlyInitialized(config: c, task: .classification(labels: 3), seed: 1)
        XCTAssertThrowsError(try ONNXExporter.model(m, name: "x")) {
            XCTAssertEqual("\($0)", "hidden_act 'relu' has no ONNX translation here (expected 'gelu')")
        }
        let good = Self.model(heads: [1, 1, 1], ffn: [3, 3, 3], task: .regression)
        let missing = URL(fileURLWithPath: "/nonexistent-cofi-folder/model.onnx")
        XCTAssertThrowsError(try ONNXExporter.write(good, to: missing)) {
            XCTAssertEqual("\($0)", "/nonexistent-cofi-folder/model.onnx: cannot write: the folder /nonexistent-cofi-folder does not exist")
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // A path that is a folder: refused, and nothing is left behind.
        let asFolder = folder.appendingPathComponent("taken.onnx")
        try FileManager.default.createDirectory(at: asFolder, withIntermediateDirectories: true)
        XCTAssertThrowsError(try ONNXExporter.write(good, to: asFolder)) {
            XCTAssertTrue("\($0)".hasPrefix("\(asFolder.path): cannot write: "), "\($0)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["taken.onnx"])
    }

    /// A Python with onnx and onnxruntime, or nil.
    static func python() -> String? {
        var candidates = [repository.appendingPathComponent(".venv-onnx/bin/python3").path,
                          repository.appendingPathComponent(".venv-peer/bin/python3").path]
        if let p = ProcessInfo.processInfo.environment["COFI_ONNX_PYTHON"] { candidates.insert(p, at: 0) }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Batches of mixed lengths padded to the longest (padding id 0, mask 0, type 0), with pairs' token types.
    static func batches(seed: UInt64) -> [BertBatch] {
        var rng = Xoshiro256(seed: seed)
        return [(1, [5]), (3, [7, 3, 1]), (2, [20, 12]), (4, [1, 1, 2, 9])].map { (count, lengths) in
            let T = lengths.max()!
            var ids = [Int](), mask = [Int](), types = [Int]()
            for n in lengths {
                for t in 0..<T {
                    let real = t < n
                    ids.append(real ? (t == 0 ? 2 : 1 + Int(rng.next() % 49)) : 0)
                    mask.append(real ? 1 : 0)
                    types.append(real && t >= (n + 1) / 2 ? 1 : 0)
                }
            }
            precondition(count == lengths.count)
            return BertBatch(batch: lengths.count, seqLen: T, inputIds: ids, attentionMask: mask, tokenTypeIds: types)
        }
    }

    func testRoundTripThroughONNXRuntime() throws {
        guard let python = Self.python() else {
            throw XCTSkip("no Python with onnx and onnxruntime: python3 -m venv .venv-onnx && "
                          + ".venv-onnx/bin/pip install -r scripts/requirements-onnx.txt (.ci/run does this)")
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-rt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let batches = Self.batches(seed: 3)
        var worst = 0.0
        for (i, c) in Self.cases.enumerated() {
            for task in [TaskHeadKind.classification(labels: 3), .regression, .span, nil] {
                let what = "\(c.name), \(task.map { "\($0)" } ?? "no head")"
                let m = Self.model(heads: c.heads, ffn: c.ffn, hidden: c.hidden, task: task, seed: UInt64(11 + i))
                let file = folder.appendingPathComponent("m.onnx")
                try ONNXExporter.write(m, to: file)
                let request: [String: Any] = [
                    "model": file.path,
                    "batches": batches.map { b in
                        ["input_ids": rows(b.inputIds, b), "attention_mask": rows(b.attentionMask, b),
                         "token_type_ids": rows(b.tokenTypeIds, b)]
                    },
                ]
                let requestFile = folder.appendingPathComponent("request.json"), responseFile = folder.appendingPathComponent("response.json")
                try JSONSerialization.data(withJSONObject: request).write(to: requestFile)
                let process = Process()
                process.executableURL = URL(fileURLWithPath: python)
                process.arguments = [Self.repository.appendingPathComponent("scripts/onnx_run.py").path, requestFile.path, responseFile.path]
                let errors = Pipe()
                process.standardError = errors
                try process.run()
                let stderr = errors.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                guard process.terminationStatus == 0 else {
                    XCTFail("\(what): onnx_run.py failed: \(String(decoding: stderr, as: UTF8.self))")
                    continue
                }
                let response = try JSONSerialization.jsonObject(with: Data(contentsOf: responseFile)) as! [String: Any]
                XCTAssertEqual(response["opset"] as? Int, 17, what)
                let outputs = response["outputs"] as! [[String: Any]]
                for (b, batch) in batches.enumerated() {
                    var mode = ForwardMode.inference
                    let reference = m(batch, mode: &mode)
                    let got = outputs[b]
                    func compare(_ name: String, _ expected: Tensor, rowsOf real: ((Int) -> Bool)? = nil) {
                        guard let values = flatten(got[name]) else { return XCTFail("\(what): no output \(name)") }
                        XCTAssertEqual(values.count, expected.scalars.count, "\(what): \(name) size")
                        guard values.count == expected.scalars.count else { return }
                        let width = expected.scalars.count / max(1, batch.batch * (real == nil ? 1 : batch.seqLen))
                        for (j, e) in expected.scalars.enumerated() {
                            if let real, !real(j / width) { continue }  // padding rows: not an output anyone reads
                            let diff = abs(Double(e) - values[j])
                            XCTAssertTrue(diff.isFinite && e.isFinite, "\(what): \(name)[\(j)] = \(values[j]), expected \(e)")
                            worst = maxError([worst, diff / max(1, abs(Double(e)))])  // NaN-aware, unlike Swift.max
                            XCTAssertLessThanOrEqual(diff, 1e-4 * max(1, abs(Double(e))), "\(what): \(name)[\(j)] batch \(b)")
                        }
                    }
                    let isReal = { (row: Int) in batch.attentionMask[row] != 0 }
                    switch task {
                    case .classification?, .regression?: compare("logits", reference.logits!.value)
                    case .span?:
                        compare("start_logits", reference.startLogits!.value, rowsOf: isReal)
                        compare("end_logits", reference.endLogits!.value, rowsOf: isReal)
                    case nil:
                        compare("last_hidden_state", reference.hiddenStates.last!.value, rowsOf: isReal)
                        compare("pooler_output", reference.pooled!.value)
                    }
                }
            }
        }
        print("ONNX Runtime vs cofi: worst relative difference \(worst)")
    }

    private func rows(_ values: [Int], _ b: BertBatch) -> [[Int]] {
        (0..<b.batch).map { Array(values[($0 * b.seqLen)..<(($0 + 1) * b.seqLen)]) }
    }

    private func flatten(_ any: Any?) -> [Double]? {
        if let d = any as? Double { return [d] }
        if let n = any as? NSNumber { return [n.doubleValue] }
        guard let a = any as? [Any] else { return nil }
        var out: [Double] = []
        for x in a { guard let f = flatten(x) else { return nil }; out += f }
        return out
    }
}

import BERT
import Foundation
import Training
import XCTest

/// What every CLI test needs: where the built `cofi` is, where the fetched assets are, and a way to run it.
extension XCTestCase {
    /// The directory of the built products (the `cofi` executable lies there).
    var productsDirectory: URL {
        #if os(macOS)
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            return bundle.bundleURL.deletingLastPathComponent()
        }
        fatalError("couldn't find the products directory")
        #else
        return Bundle.main.bundleURL
        #endif
    }

    /// `$COFI_ASSETS`, else the repository's `.assets` (filled by `cofi fetch`).
    var assetsDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["COFI_ASSETS"] { return URL(fileURLWithPath: dir) }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".assets")
    }

    /// The real all-MiniLM-L6-v2 model directory.
    var miniLM: URL { assetsDirectory.appendingPathComponent("all-MiniLM-L6-v2") }

    /// Runs `cofi args…` with `input` on stdin (none when nil); returns (exit status, stdout, stderr). stderr is
    /// drained on another thread, so a run's progress lines cannot fill a pipe while stdout is read.
    func runCofi(_ args: [String], input: Data? = nil) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = productsDirectory.appendingPathComponent("cofi")
        p.arguments = args
        let stdin = Pipe(), out = Pipe(), err = Pipe()
        if input != nil { p.standardInput = stdin }
        p.standardOutput = out
        p.standardError = err
        try p.run()
        final class Box: @unchecked Sendable { var data = Data() }
        let e = Box()
        let done = DispatchSemaphore(value: 0)
        Thread {
            e.data = err.fileHandleForReading.readDataToEndOfFile()
            done.signal()
        }.start()
        if let input {
            stdin.fileHandleForWriting.write(input)
            try stdin.fileHandleForWriting.close()
        }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e.data, as: UTF8.self))
    }

    /// A model directory: config.json, model.safetensors (random, 2 layers of width `hidden`, with a 2-class head
    /// labelled negative/positive or a span head when `head`) and a word-level vocab.txt of `vocabulary`.
    func writeTinyModel(at dir: URL, vocabulary words: [String], seed: UInt64, head: Bool, hidden: Int = 16,
                        span: Bool = false) throws -> URL {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
        let config = BertConfig(vocabSize: vocab.count, hiddenSize: hidden, numHiddenLayers: 2, numAttentionHeads: 4,
                                intermediateSize: 12, maxPositionEmbeddings: 32, initializerRange: 0.2)
        let task: TaskHeadKind? = head ? (span ? .span : .classification(labels: 2)) : nil
        let model = BertModel.randomlyInitialized(config: config, task: task, seed: seed)
        try TrainingCheckpoint.write(to: dir, model: model,
                                     export: ModelExport(labels: head && !span ? .classification(names: ["negative", "positive"]) : nil,
                                                         tokenizerDirectory: nil))
        // After the model: writing the checkpoint replaces the directory.
        try (vocab.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("vocab.txt"), atomically: true,
                                                          encoding: .utf8)
        return dir
    }

    /// A SQuAD v1.1 data folder in `dir` cut from the reader's sample (TasksTests fixture): the short paragraphs
    /// (under 500 characters) as train-v1.1.json, the shortest (under 100) as dev-v1.1.json — 9 training questions,
    /// 1 dev question; small enough for debug builds.
    func writeSQuADSample(to dir: URL) throws {
        let sample = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TasksTests/Fixtures/squad_v1_sample.json")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: sample)) as! [String: Any]
        func keep(under length: Int) {
            json["data"] = (json["data"] as! [[String: Any]]).compactMap { article -> [String: Any]? in
                var a = article
                let short = (article["paragraphs"] as! [[String: Any]]).filter { ($0["context"] as! String).count < length }
                a["paragraphs"] = short
                return short.isEmpty ? nil : a
            }
        }
        keep(under: 500)
        try JSONSerialization.data(withJSONObject: json).write(to: dir.appendingPathComponent("train-v1.1.json"))
        keep(under: 100)
        try JSONSerialization.data(withJSONObject: json).write(to: dir.appendingPathComponent("dev-v1.1.json"))
    }
}

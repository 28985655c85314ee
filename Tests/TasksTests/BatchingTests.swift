import Foundation
import XCTest
import BERT
import Tensor
@testable import Tasks

/// Seeded shuffling, dynamic padding, length bucketing and drop-last.
final class BatchingTests: XCTestCase {
    /// Examples of lengths 3…12 in a cycle; ids encode (example, position) so padding mistakes show.
    func examples(_ n: Int, label: (Int) -> Label? = { .classification($0 % 2) }) -> [EncodedExample] {
        (0..<n).map { i in
            let len = 3 + (i * 7) % 10
            return EncodedExample(ids: (0..<len).map { 1000 * (i + 1) + $0 }, typeIds: (0..<len).map { $0 < len / 2 ? 0 : 1 },
                                  label: label(i), index: i)
        }
    }

    func testPermutationIsPinned() {
        // Fisher–Yates on Xoshiro256(seed: 42), checked against an independent Python implementation.
        var rng = Xoshiro256(seed: 42)
        XCTAssertEqual(SeededShuffle.permutation(10, using: &rng), [7, 3, 8, 9, 5, 6, 4, 1, 0, 2])
        var one = Xoshiro256(seed: 1)
        XCTAssertEqual(SeededShuffle.permutation(1, using: &one), [0])
        XCTAssertEqual(SeededShuffle.permutation(0, using: &one), [])
    }

    func testIndexBelowIsUniformEnough() {
        var rng = Xoshiro256(seed: 3)
        var hist = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 { hist[SeededShuffle.index(below: 7, using: &rng)] += 1 }
        for h in hist { XCTAssertEqual(Double(h), 10_000, accuracy: 400) }
    }

    func testDynamicPaddingLayout() {
        let ex = [EncodedExample(ids: [101, 5, 102], typeIds: [0, 0, 0], label: .classification(1), index: 10),
                  EncodedExample(ids: [101, 7, 8, 102, 9, 102], typeIds: [0, 0, 0, 0, 1, 1], label: .classification(0), index: 11)]
        let b = Batcher(examples: ex, padId: 0, options: .evaluation(batchSize: 8)).batches(epoch: 0)
        XCTAssertEqual(b.count, 1)
        let x = b[0].inputs
        XCTAssertEqual(x.batch, 2)
        XCTAssertEqual(x.seqLen, 6, "padded to the longest in the batch, not to a fixed length")
        XCTAssertEqual(x.inputIds, [101, 5, 102, 0, 0, 0, 101, 7, 8, 102, 9, 102])
        XCTAssertEqual(x.attentionMask, [1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1])
        XCTAssertEqual(x.tokenTypeIds, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
        XCTAssertEqual(b[0].labels, .classes([1, 0]))
        XCTAssertEqual(b[0].indices, [10, 11])
        let padded = Batcher(examples: ex, padId: 77, options: .evaluation(batchSize: 1)).batches(epoch: 0)
        XCTAssertEqual(padded.map(\.inputs.seqLen), [3, 6])
        let three = Batcher(examples: Array(ex.prefix(1)) + ex, padId: 77, options: .evaluation(batchSize: 2)).batches(epoch: 0)
        XCTAssertEqual(three[0].inputs.inputIds, [101, 5, 102, 101, 5, 102])
        XCTAssertEqual(three[1].inputs.inputIds, [101, 7, 8, 102, 9, 102])
    }

    func testRegressionAndUnlabeledBatches() {
        let reg = Batcher(examples: examples(3, label: { .regression(Double($0) / 2) }), padId: 0,
                          options: .evaluation(batchSize: 3)).batches(epoch: 0)
        XCTAssertEqual(reg[0].labels, .values([0, 0.5, 1]))
        let none = Batcher(examples: examples(3, label: { _ in nil }), padId: 0, options: .evaluation(batchSize: 3))
            .batches(epoch: 0)
        XCTAssertNil(none[0].labels)
    }

    func testEvaluationOrderIsSequential() {
        let b = Batcher(examples: examples(10), padId: 0, options: .evaluation(batchSize: 4))
        XCTAssertEqual(b.order(epoch: 5), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
        XCTAssertEqual(b.batchCount, 3)
    }

    func testShuffleIsSeededPerEpochAndCoversEveryExample() {
        let ex = examples(103)
        let opts = BatchingOptions(batchSize: 8, seed: 17)
        let b = Batcher(examples: ex, padId: 0, options: opts)
        let e0 = b.order(epoch: 0), e1 = b.order(epoch: 1)
        XCTAssertEqual(e0, Batcher(examples: ex, padId: 0, options: opts).order(epoch: 0), "deterministic for a seed")
        XCTAssertNotEqual(e0, e1, "each epoch has its own order")
        XCTAssertEqual(e1, Batcher(examples: ex, padId: 0, options: BatchingOptions(batchSize: 8, seed: 18)).order(epoch: 0),
                       "epoch e uses seed + e")
        XCTAssertNotEqual(e0.flatMap { $0 }, Array(0..<103))
        XCTAssertEqual(e0.flatMap { $0 }.sorted(), Array(0..<103))
        XCTAssertEqual(e0.map(\.count), Array(repeating: 8, count: 12) + [7])
        XCTAssertEqual(b.batchCount, 13)
        var rng = Xoshiro256(seed: 17)
        XCTAssertEqual(e0.flatMap { $0 }, SeededShuffle.permutation(103, using: &rng))
    }

    func testDropLast() {
        let b = Batcher(examples: examples(103), padId: 0, options: BatchingOptions(batchSize: 8, seed: 1, dropLast: true))
        let order = b.order(epoch: 0)
        XCTAssertEqual(order.count, 12)
        XCTAssertEqual(b.batchCount, 12)
        XCTAssertTrue(order.allSatisfy { $0.count == 8 })
        XCTAssertEqual(Set(order.flatMap { $0 }).count, 96)
        let exact = Batcher(examples: examples(16), padId: 0, options: BatchingOptions(batchSize: 8, dropLast: true))
        XCTAssertEqual(exact.order(epoch: 0).count, 2, "nothing dropped when the batches are whole")
        let bucketed = Batcher(examples: examples(103), padId: 0,
                               options: BatchingOptions(batchSize: 8, seed: 1, dropLast: true,
                                                        bucketing: LengthBucketing(chunkBatches: 5)))
        XCTAssertEqual(bucketed.order(epoch: 0).count, 12)
        XCTAssertTrue(bucketed.order(epoch: 0).allSatisfy { $0.count == 8 })
    }

    func testLengthBucketingPadsLessAndKeepsEveryExample() {
        let ex = examples(1000)
        func padding(_ b: Batcher) -> Int {
            b.batches(epoch: 0).reduce(0) { $0 + $1.inputs.attentionMask.filter { $0 == 0 }.count }
        }
        let plain = Batcher(examples: ex, padId: 0, options: BatchingOptions(batchSize: 16, seed: 5))
        let bucketing = LengthBucketing(chunkBatches: 10)
        let bucketed = Batcher(examples: ex, padId: 0, options: BatchingOptions(batchSize: 16, seed: 5, bucketing: bucketing))
        let order = bucketed.order(epoch: 0)
        XCTAssertEqual(order.flatMap { $0 }.sorted(), Array(0..<1000))
        XCTAssertEqual(order, bucketed.order(epoch: 0), "deterministic")
        XCTAssertNotEqual(order, bucketed.order(epoch: 1))
        let (p, q) = (padding(plain), padding(bucketed))
        print("padding tokens per epoch, 1,000 examples of length 3…12, batch 16: plain \(p), bucketed (chunks of 10 batches) \(q)")
        XCTAssertLessThan(q * 4, p)

        // Each chunk of 160 shuffled examples is sorted longest first and cut into batches.
        var rng = Xoshiro256(seed: 5)
        let sequence = SeededShuffle.permutation(1000, using: &rng)
        let firstChunk = Set(sequence.prefix(160))
        let chunkBatches = order.filter { Set($0).isSubset(of: firstChunk) }
        XCTAssertEqual(chunkBatches.count, 10)
        for batch in order {
            let lengths = batch.map { ex[$0].count }
            XCTAssertEqual(lengths, lengths.sorted(by: >), "longest first within a batch")
        }
        // Without shuffle (evaluation) the batches stay in chunk order and are still sorted.
        let evalOrder = Batcher(examples: ex, padId: 0, options: BatchingOptions(batchSize: 16, shuffle: false, bucketing: bucketing))
            .order(epoch: 0)
        XCTAssertEqual(evalOrder.flatMap { $0 }.prefix(160).map { ex[$0].count }, Array(0..<160).map { ex[$0].count }.sorted(by: >))
    }

    // MARK: encoding with the real tokenizer

    /// The real all-MiniLM-L6-v2 tokenizer (`cofi fetch`, or $COFI_ASSETS).
    func realTokenizer() throws -> WordPieceTokenizer {
        let dir: URL
        if let assets = ProcessInfo.processInfo.environment["COFI_ASSETS"] {
            dir = URL(fileURLWithPath: assets).appendingPathComponent("all-MiniLM-L6-v2")
        } else {
            dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent(".assets/all-MiniLM-L6-v2")
        }
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("vocab.txt").path) else {
            XCTFail("\(dir.path): the real tokenizer is missing; run `swift run cofi fetch` first")
            throw DataError(file: dir.path, message: "missing; run `swift run cofi fetch`")
        }
        return try WordPieceTokenizer.load(directory: dir)
    }

    func testTaskEncoderSinglesAndPairs() throws {
        let encoder = TaskEncoder(tokenizer: try realTokenizer())
        XCTAssertEqual(encoder.maxLength, 128)
        XCTAssertEqual(encoder.truncation, .longestFirst)
        XCTAssertEqual(encoder.padId, 0)
        let src = SourceLocation(file: "x", line: 1)
        let single = encoder.encode(TextExample(textA: "Hello, world! Unaffable tokenization.", label: .classification(1),
                                                source: src), index: 4)
        XCTAssertEqual(single.ids, [101, 7592, 1010, 2088, 999, 14477, 20961, 3468, 19204, 3989, 1012, 102])
        XCTAssertEqual(single.typeIds, Array(repeating: 0, count: 12))
        XCTAssertEqual(single.label, .classification(1))
        XCTAssertEqual(single.index, 4)

        let pair = encoder.encode(TextExample(textA: "A man is playing a guitar.", textB: "Someone plays.", label: nil,
                                              source: src), index: 0)
        XCTAssertEqual(pair.ids.first, 101)
        XCTAssertEqual(pair.ids.filter { $0 == 102 }.count, 2)
        let firstSep = pair.ids.firstIndex(of: 102)!
        XCTAssertEqual(pair.typeIds, Array(repeating: 0, count: firstSep + 1) + Array(repeating: 1, count: pair.count - firstSep - 1))

        // Longest-first truncation to 128 tokens: 125 text tokens, split 62 / 63 with the odd one to the longer text
        // (the tokenizers crate's truncate_encodings).
        let long = String(repeating: "word ", count: 200), longer = String(repeating: "thing ", count: 300)
        let cut = encoder.encode(TextExample(textA: long, textB: longer, label: nil, source: src), index: 0)
        XCTAssertEqual(cut.count, 128)
        XCTAssertEqual(cut.typeIds.filter { $0 == 0 }.count, 1 + 62 + 1)
        XCTAssertEqual(cut.typeIds.filter { $0 == 1 }.count, 63 + 1)
    }

    func testMovieSnippetsEncodeAndBatch() throws {
        let tokenizer = try realTokenizer()
        let raw = MovieSnippetsTests.rawFile
        guard FileManager.default.fileExists(atPath: raw.path) else {
            return XCTFail("\(raw.path): the movie-snippets raw file is missing; run `swift run cofi fetch` first")
        }
        let dir = try dataScratchDirectory()
        try MovieSnippets.build(rawFile: raw, into: dir)
        let train = try MovieSnippets.read(.train, from: dir)
        let encoder = TaskEncoder(tokenizer: tokenizer)
        let t0 = Date()
        let encoded = encoder.encode(train)
        let seconds = Date().timeIntervalSince(t0)
        XCTAssertEqual(encoded.count, 9_568)
        // The parallel path gives what one-by-one encoding gives.
        for i in stride(from: 0, to: encoded.count, by: 97) {
            XCTAssertEqual(encoded[i], encoder.encode(train.examples[i], index: i))
        }
        let lengths = encoded.map(\.count)
        print("movie-snippets train: \(encoded.count) sentences encoded in \(String(format: "%.2f", seconds)) s; " +
              "tokens mean \(String(format: "%.1f", Double(lengths.reduce(0, +)) / Double(lengths.count))), max \(lengths.max()!)")
        XCTAssertLessThanOrEqual(lengths.max()!, 128)

        let batcher = Batcher(examples: encoded, padId: encoder.padId,
                              options: BatchingOptions(batchSize: 32, seed: 1, bucketing: LengthBucketing()))
        let batches = batcher.batches(epoch: 0)
        XCTAssertEqual(batches.count, 299)
        XCTAssertEqual(batches.flatMap(\.indices).sorted(), Array(0..<9_568))
        for b in batches {
            let x = b.inputs
            guard case .classes(let labels)? = b.labels else { return XCTFail("class labels expected") }
            XCTAssertEqual(labels.count, x.batch)
            for r in 0..<x.batch {
                let row = Array(x.inputIds[(r * x.seqLen)..<((r + 1) * x.seqLen)])
                let mask = Array(x.attentionMask[(r * x.seqLen)..<((r + 1) * x.seqLen)])
                let n = mask.filter { $0 == 1 }.count
                XCTAssertEqual(row[0], 101)
                XCTAssertEqual(row[n - 1], 102)
                XCTAssertTrue(row[n...].allSatisfy { $0 == 0 })
                XCTAssertEqual(labels[r], train.examples[b.indices[r]].label?.classIndex)
            }
        }
        let padTokens = batches.reduce(0) { $0 + $1.inputs.attentionMask.filter { $0 == 0 }.count }
        print("movie-snippets train, batch 32, bucketed: \(batches.count) batches, \(padTokens) padding tokens " +
              "(\(String(format: "%.1f", 100 * Double(padTokens) / Double(padTokens + lengths.reduce(0, +))))% of the batch tokens)")
    }
}

import XCTest
@testable import Tensor
import TestSupport

/// Packed sequences: the layout, and attention and dropout on packed tokens against the padded batch they come from.
final class PackedSequencesTests: XCTestCase {
    // Three sequences of T = 5: lengths 3, 5 and 2 (right padding), so one sequence has no padding.
    let B = 3, T = 5
    let mask = [1, 1, 1, 0, 0,  1, 1, 1, 1, 1,  1, 1, 0, 0, 0]

    func testLayout() throws {
        let p = try XCTUnwrap(PackedSequences(attentionMask: mask, batch: B, seqLen: T))
        XCTAssertEqual(p.rows, [0, 1, 2, 5, 6, 7, 8, 9, 10, 11])
        XCTAssertEqual(p.starts, [0, 3, 8, 10])
        XCTAssertEqual(p.positions, [0, 1, 2, 0, 1, 2, 3, 4, 0, 1])
        XCTAssertEqual(p.firstRows, [0, 3, 8])
        XCTAssertEqual((0..<B).map(p.length), [3, 5, 2])
        XCTAssertEqual(p.gather(Array(0..<(B * T * 2)), width: 2).prefix(8), [0, 1, 2, 3, 4, 5, 10, 11])
        // Left padding packs too: the first token must be real, the others may be anywhere.
        let holes = try XCTUnwrap(PackedSequences(attentionMask: [1, 0, 1, 1], batch: 1, seqLen: 4))
        XCTAssertEqual(holes.positions, [0, 2, 3])
        // Nothing to gain, or a sequence whose first token is padding: no packing.
        XCTAssertNil(PackedSequences(attentionMask: [1, 1, 1, 1], batch: 2, seqLen: 2))
        XCTAssertNil(PackedSequences(attentionMask: [1, 1, 0, 1], batch: 2, seqLen: 2))
    }

    func testPackedAttentionGradients() throws {
        let p = try XCTUnwrap(PackedSequences(attentionMask: mask, batch: B, seqLen: T))
        let H = 2, Dh = 3
        let q = param([p.count, H * Dh], seed: 40), k = param([p.count, H * Dh], seed: 41)
        let v = param([p.count, H * Dh], seed: 42)
        for rate: Float in [0, 0.25] {
            checkGradients("packed attention p=\(rate)", inputs: [q, k, v], eps: 1e-3) {
                var rng = Xoshiro256(seed: 3)
                return attention(q: q, k: k, v: v, packed: p, heads: H, headDim: Dh, dropout: rate, rng: &rng)
            }
        }
    }

    /// The packed op gives the padded op's outputs and gradients on the real rows, dropout included (the same
    /// pattern), and leaves the random stream where the padded op leaves it.
    func testPackedAttentionAndDropoutMatchThePaddedBatch() throws {
        // Padding inside a sequence too (the third), so a packed row's position differs from its index.
        let mask = [1, 1, 1, 0, 0,  1, 1, 1, 1, 1,  1, 0, 1, 0, 1]
        let p = try XCTUnwrap(PackedSequences(attentionMask: mask, batch: B, seqLen: T))
        let H = 2, Dh = 4, HD = H * Dh
        var rng = Xoshiro256(seed: 9)
        let full = [Tensor.randomNormal(shape: [B * T, HD], using: &rng), Tensor.randomNormal(shape: [B * T, HD], using: &rng),
                    Tensor.randomNormal(shape: [B * T, HD], using: &rng)]
        let weights = Tensor.randomNormal(shape: [B * T, HD], using: &rng)
        let additive = mask.map { Float(1 - $0) * -10000 }
        func rows(_ t: Tensor) -> Tensor { Tensor(shape: [p.count, HD], scalars: p.gather(t.scalars, width: HD)) }

        for slice: RowSlice? in [nil, RowSlice(offset: 1, count: 3, total: 6)] {
            let padded = full.map { Variable($0, requiresGrad: true) }
            var rngA = Xoshiro256(seed: 5)
            let a = attention(q: padded[0], k: padded[1], v: padded[2], batch: B, seqLen: T, heads: H, headDim: Dh,
                              additiveMask: additive, dropout: 0.3, rng: &rngA, rows: slice)
            let d = dropout(a, p: 0.2, rng: &rngA, rows: slice)
            // Only the real rows count: a padding row's output is never read.
            var realWeights = Tensor(zeros: [B * T, HD])
            for r in p.rows { for c in 0..<HD { realWeights.scalars[r * HD + c] = weights.scalars[r * HD + c] } }
            (d * Variable(realWeights)).sum().backward()

            let packed = full.map { Variable(rows($0), requiresGrad: true) }
            var rngB = Xoshiro256(seed: 5)
            let b = attention(q: packed[0], k: packed[1], v: packed[2], packed: p, heads: H, headDim: Dh,
                              dropout: 0.3, rng: &rngB, rows: slice)
            let e = dropout(b, p: 0.2, rng: &rngB, rows: slice, packed: p)
            (e * Variable(rows(weights))).sum().backward()

            XCTAssertEqual(rngA.next(), rngB.next(), "the packed ops draw what the padded ops draw")
            XCTAssertLessThanOrEqual(rows(d.value).maxAbsDifference(e.value), 1e-6, "outputs")
            for i in 0..<3 {
                let gPadded = try XCTUnwrap(padded[i].grad), gPacked = try XCTUnwrap(packed[i].grad)
                XCTAssertLessThanOrEqual(rows(gPadded).maxAbsDifference(gPacked), 1e-6, "gradient \(i)")
            }
        }
    }
}

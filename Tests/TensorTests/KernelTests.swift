import Foundation
import PackedGEMM
import Platform
import XCTest
@testable import Tensor

/// Fast kernels against their naive twins.
final class KernelTests: XCTestCase {
    func testGemmMatchesNaiveForAllTranspositions() {
        var rng = Xoshiro256(seed: 1)
        // The large case is split across threads by BLAS.gemm.
        for (m, n, k) in [(3, 5, 4), (17, 9, 33), (200, 150, 90)] {
            for transA in [false, true] { for transB in [false, true] {
                let a = Tensor.randomNormal(shape: [m * k], using: &rng), b = Tensor.randomNormal(shape: [k * n], using: &rng)
                let c0 = Tensor.randomNormal(shape: [m * n], using: &rng)
                var fast = c0, slow = c0
                a.withPointer { ap in b.withPointer { bp in
                    let lda = transA ? m : k, ldb = transB ? k : n
                    fast.withMutablePointer { cp in
                        BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: ap, lda: lda,
                                  b: bp, ldb: ldb, beta: 2, c: cp, ldc: n)
                    }
                    slow.withMutablePointer { cp in
                        BLAS.gemmNaive(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: ap, lda: lda,
                                       b: bp, ldb: ldb, beta: 2, c: cp, ldc: n)
                    }
                } }
                let d = fast.maxAbsDifference(slow)
                XCTAssertLessThan(d, 1e-3 * Float(k).squareRoot(), "gemm \(m)x\(n)x\(k) tA=\(transA) tB=\(transB)")
            } }
        }
    }

    /// The PackedGEMM path of `BLAS.gemm` (the training path's products in optimised builds), switched on here
    /// for every packed kernel family this processor runs, every transposition, beta 0 and 1, alpha ≠ 1, leading
    /// dimensions wider than the matrices, and sizes that split by row blocks (m ≥ 2 · 128) or by panels (few
    /// rows), with partial panels and tiles.
    func testPackedGemmPathMatchesNaive() {
        let saved = (BLAS.usePackedKernels, BLAS.packedMinimumWork, PackedGEMM.family)
        BLAS.usePackedKernels = true
        BLAS.packedMinimumWork = 0
        defer { (BLAS.usePackedKernels, BLAS.packedMinimumWork, PackedGEMM.family) = saved }
        for family in KernelFamily.available where family.usesPackedGEMM {
            PackedGEMM.family = family
            checkPackedGemm(family)
        }
    }

    /// A long k runs in depth blocks, each continuing every output's chain from the partial sum in C: the same bits
    /// as one block, on every family, for every transposition and row/panel split (beta 0; beta 1 keeps one block).
    func testPackedDepthBlocksKeepTheBitsOfOneBlock() {
        let saved = (BLAS.usePackedKernels, BLAS.packedMinimumWork, PackedGEMM.family, BLAS.packedDepthBlock)
        BLAS.usePackedKernels = true
        BLAS.packedMinimumWork = 0
        defer { (BLAS.usePackedKernels, BLAS.packedMinimumWork, PackedGEMM.family, BLAS.packedDepthBlock) = saved }
        var rng = Xoshiro256(seed: 4)
        for family in KernelFamily.available where family.usesPackedGEMM {
            PackedGEMM.family = family
            for (m, n, k) in [(1, 40, 23), (7, 33, 30), (300, 70, 21)] {
                for transA in [false, true] { for transB in [false, true] {
                    let lda = transA ? m : k, ldb = transB ? k : n
                    let a = Tensor.randomNormal(shape: [(transA ? k : m) * lda], using: &rng)
                    let b = Tensor.randomNormal(shape: [(transB ? n : k) * ldb], using: &rng)
                    var results: [[UInt32]] = []
                    for depth in [1 << 30, 4, 5] {
                        BLAS.packedDepthBlock = depth
                        var c = Tensor(zeros: [m * n])
                        a.withPointer { ap in b.withPointer { bp in c.withMutablePointer { cp in
                            BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: ap, lda: lda,
                                      b: bp, ldb: ldb, c: cp, ldc: n)
                        } } }
                        results.append(c.scalars.map(\.bitPattern))
                    }
                    XCTAssertEqual(results[1], results[0], "\(family) \(m)x\(n)x\(k) tA=\(transA) tB=\(transB) blocks of 4")
                    XCTAssertEqual(results[2], results[0], "\(family) \(m)x\(n)x\(k) tA=\(transA) tB=\(transB) blocks of 5")
                } }
            }
        }
    }

    func checkPackedGemm(_ family: KernelFamily) {
        var rng = Xoshiro256(seed: 2)
        for (m, n, k) in [(1, 5, 4), (9, 33, 17), (40, 70, 3), (300, 45, 20)] {
            for transA in [false, true] { for transB in [false, true] { for beta: Float in [0, 1] {
                let lda = (transA ? m : k) + 2, ldb = (transB ? k : n) + 3, ldc = n + 1
                let a = Tensor.randomNormal(shape: [(transA ? k : m) * lda], using: &rng)
                let b = Tensor.randomNormal(shape: [(transB ? n : k) * ldb], using: &rng)
                let c0 = Tensor.randomNormal(shape: [m * ldc], using: &rng)
                var fast = c0, slow = c0
                a.withPointer { ap in b.withPointer { bp in
                    fast.withMutablePointer { cp in
                        BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: ap, lda: lda,
                                  b: bp, ldb: ldb, beta: beta, c: cp, ldc: ldc)
                    }
                    slow.withMutablePointer { cp in
                        BLAS.gemmNaive(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: ap, lda: lda,
                                       b: bp, ldb: ldb, beta: beta, c: cp, ldc: ldc)
                    }
                } }
                // Columns past n (the padding of each row of C) stay as they were.
                XCTAssertLessThan(fast.maxAbsDifference(slow), 1e-4 * Float(k).squareRoot(),
                                  "\(family): packed gemm \(m)x\(n)x\(k) tA=\(transA) tB=\(transB) beta=\(beta)")
            } } }
        }
    }

    func testVectorExpMatchesLibm() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let v = FastMath.exp(FastMath.V(repeating: x))[0]
            let r = FastMath.Reference.exp(x)
            worst = maxError([worst, absDifference(v, r) / r])
            x += 0.0137
        }
        print("exp: max relative error \(worst)")
        XCTAssertLessThan(worst, 3e-7)
        XCTAssertEqual(FastMath.exp(FastMath.V(repeating: -10000))[0], 0)
        XCTAssertEqual(FastMath.exp(FastMath.V(repeating: 0))[0], 1)
    }

    func testVectorErfMatchesLibm() {
        var worst: Float = 0
        var x: Float = -6
        while x < 6 {
            let v = FastMath.erf(FastMath.V(repeating: x))[0]
            worst = maxError([worst, absDifference(v, FastMath.Reference.erf(x))])
            x += 0.00123
        }
        print("erf: max absolute error \(worst)")
        XCTAssertLessThan(worst, 5e-7)
    }

    func testGeluKernelsMatchNaive() {
        var rng = Xoshiro256(seed: 2)
        let n = 100_003  // not a multiple of 8, large enough to be split across threads
        let x = Tensor.randomNormal(shape: [n], std: 3, using: &rng)
        let dy = Tensor.randomNormal(shape: [n], using: &rng)
        var y = Tensor(zeros: [n]), dx = Tensor(zeros: [n])
        x.withPointer { xp in
            y.withMutablePointer { Kernels.geluForward(xp, $0, n) }
            dy.withPointer { gp in dx.withMutablePointer { Kernels.geluBackward(xp, gp, $0, n) } }
        }
        let worstY = maxAbsDifference(y.scalars, x.scalars.map(Kernels.Naive.gelu))
        let worstD = maxAbsDifference(dx.scalars, (0..<n).map { dy.scalars[$0] * Kernels.Naive.geluDerivative(x.scalars[$0]) })
        print("gelu: max abs error \(worstY), derivative \(worstD)")
        XCTAssertLessThan(worstY, 2e-6)
        XCTAssertLessThan(worstD, 2e-6)
        // Short inputs take the tail path only.
        var small = [Float](repeating: 0, count: 3)
        [Float(-1), 0, 2].withUnsafeBufferPointer { xp in small.withUnsafeMutableBufferPointer {
            Kernels.geluForward(xp.baseAddress!, $0.baseAddress!, 3)
        } }
        XCTAssertEqual(small[2], Kernels.Naive.gelu(2), accuracy: 1e-6)
    }

    func testSoftmaxRowMatchesNaive() {
        var rng = Xoshiro256(seed: 3)
        for n in [1, 7, 8, 131] {
            let x = Tensor.randomNormal(shape: [n], std: 4, using: &rng)
            var y = [Float](repeating: 0, count: n)
            x.withPointer { xp in y.withUnsafeMutableBufferPointer { Kernels.softmaxRow(xp, $0.baseAddress!, n) } }
            let r = Kernels.Naive.softmax(x.scalars)
            for i in 0..<n { XCTAssertEqual(y[i], r[i], accuracy: 1e-6) }
        }
    }

    func testLayerNormMatchesDoublePrecision() {
        var rng = Xoshiro256(seed: 4)
        let x = Variable(Tensor.randomNormal(shape: [3, 10], mean: 5, std: 2, using: &rng))
        let g = Variable(Tensor.randomNormal(shape: [10], using: &rng)), b = Variable(Tensor.randomNormal(shape: [10], using: &rng))
        let keep = (0..<10).map { $0 % 3 != 1 }
        let y = layerNorm(x, gamma: g, beta: b, eps: 1e-12, keep: keep).value
        for r in 0..<3 {
            let row = (0..<10).map { Double(x.value.scalars[r * 10 + $0]) }
            let kept = row.indices.filter { keep[$0] }
            let mean = kept.map { row[$0] }.reduce(0, +) / Double(kept.count)
            let variance = kept.map { (row[$0] - mean) * (row[$0] - mean) }.reduce(0, +) / Double(kept.count)
            for i in 0..<10 {
                let expect = keep[i] ? (row[i] - mean) / (variance + 1e-12).squareRoot() * Double(g.value.scalars[i]) + Double(b.value.scalars[i]) : row[i]
                XCTAssertEqual(Double(y.scalars[r * 10 + i]), expect, accuracy: 1e-5)
            }
        }
    }

    func testRNGIsDeterministicAndUniform() {
        var a = Xoshiro256(seed: 57), b = Xoshiro256(seed: 57)
        for _ in 0..<10 { XCTAssertEqual(a.next(), b.next()) }
        var c = Xoshiro256(seed: 58)
        XCTAssertNotEqual(a.next(), c.next())
        var s = 0.0, s2 = 0.0
        for _ in 0..<100_000 { let x = Double(a.nextNormal()); s += x; s2 += x * x }
        XCTAssertEqual(s / 100_000, 0, accuracy: 0.02)
        XCTAssertEqual(s2 / 100_000, 1, accuracy: 0.02)
    }
}

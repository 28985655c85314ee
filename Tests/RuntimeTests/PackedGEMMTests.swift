import XCTest
import PackedGEMM
import Platform
import Tensor

/// The pre-packed kernels against their naive Double twin: every row count of the 8-row tile (and the single-row
/// kernel), full and partial panels, stacked segments run together and alone, with and without bias, and A
/// read with a leading dimension wider than k.
final class PackedGEMMTests: XCTestCase {
    struct Case {
        var m: Int, k: Int, segments: [Int], lda: Int
    }

    static func random(_ count: Int, seed: inout UInt64) -> [Float] {
        (0..<count).map { _ in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: seed >> 11) % 2001 - 1000) / 1000
        }
    }

    func check(_ c: Case, bias withBias: Bool, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        var s = seed
        let n = c.segments.reduce(0, +)
        let a = Self.random(max(1, c.m * c.lda), seed: &s)
        let w = Self.random(max(1, n * c.k), seed: &s)
        let bias = Self.random(max(1, n), seed: &s)
        let ldc = n + 3
        w.withUnsafeBufferPointer { wp in
            var start = 0
            let segments = c.segments.map { rows -> (weights: UnsafePointer<Float>, rows: Int) in
                defer { start += rows * c.k }
                return (wp.baseAddress! + start, rows)
            }
            let packed = PackedMatrix(k: c.k, segments: segments)
            defer { packed.deallocate() }
            XCTAssertEqual(packed.n, n, file: file, line: line)
            XCTAssertEqual(packed.panelCount, c.segments.reduce(0) { $0 + ($1 + 31) / 32 }, file: file, line: line)
            // All segments at once, then each segment alone into a fresh output.
            var runs: [(Range<Int>, Range<Int>)] = [(0..<packed.panelCount, 0..<n)]
            var column = 0
            for (i, rows) in c.segments.enumerated() {
                runs.append((packed.segmentPanels[i], column..<(column + rows)))
                column += rows
            }
            for (panels, columns) in runs {
                let want = a.withUnsafeBufferPointer { ap in
                    bias.withUnsafeBufferPointer { bp in
                        PackedGEMM.naive(ap.baseAddress!, lda: c.lda, m: c.m, weights: wp.baseAddress!, n: n, k: c.k,
                                         bias: withBias ? bp.baseAddress! : nil)
                    }
                }
                var first: (KernelFamily, [Float])?
                Self.forEachPackedFamily { family in
                    var out = [Float](repeating: .nan, count: max(1, c.m * ldc))
                    a.withUnsafeBufferPointer { ap in
                        bias.withUnsafeBufferPointer { bp in
                            out.withUnsafeMutableBufferPointer { op in
                                PackedGEMM.multiply(ap.baseAddress!, lda: c.lda, m: c.m, by: packed, panels: panels,
                                                    bias: withBias ? bp.baseAddress! : nil, into: op.baseAddress!, ldc: ldc)
                            }
                        }
                    }
                    // The output starts as NaN: a column of the run left unwritten makes `worst` NaN and fails.
                    var got: [Float] = [], expected: [Float] = [], untouched = true
                    for r in 0..<c.m {
                        for j in 0..<ldc {
                            if columns.contains(j) {
                                got.append(out[r * ldc + j])
                                expected.append(want[r * n + j])
                            } else if !out[r * ldc + j].isNaN {
                                untouched = false
                            }
                        }
                    }
                    let what = "\(family): m \(c.m) k \(c.k) segments \(c.segments) panels \(panels)"
                    let worst = maxAbsDifference(got, expected)
                    XCTAssertLessThanOrEqual(worst, 1e-5 * Float(max(1, c.k)).squareRoot() * 4, what, file: file, line: line)
                    XCTAssertTrue(untouched, "wrote outside columns \(columns): \(what)", file: file, line: line)
                    // Every family computes each output in the same order: the same bits.
                    if let (reference, values) = first {
                        XCTAssertEqual(got.map(\.bitPattern), values.map(\.bitPattern), "\(what) differs from \(reference)",
                                       file: file, line: line)
                    } else {
                        first = (family, got)
                    }
                }
            }
        }
    }

    /// Runs `body` with `PackedGEMM.family` set to each packed family this build and processor run.
    static func forEachPackedFamily(_ body: (KernelFamily) -> Void) {
        let saved = PackedGEMM.family
        defer { PackedGEMM.family = saved }
        for family in KernelFamily.available where family.usesPackedGEMM {
            PackedGEMM.family = family
            body(family)
        }
    }

    func testEveryTileRowCountAndPanelWidthMatchesNaive() {
        var seed: UInt64 = 1
        for m in [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 15, 16, 17] {
            for (k, segments) in [(1, [1]), (5, [32]), (13, [33]), (37, [70]), (64, [31, 1, 64]), (11, [150])] {
                for bias in [false, true] {
                    seed += 1
                    check(Case(m: m, k: k, segments: segments, lda: k + m % 3), bias: bias, seed: seed)
                }
            }
        }
    }

    /// Q | K | V of a three-head, 6-wide layer: segments not aligned to panels, run together and one by one.
    func testStackedSegmentsRunTogetherAndAlone() {
        check(Case(m: 10, k: 18, segments: [18, 18, 18], lda: 18), bias: true, seed: 99)
        check(Case(m: 1, k: 18, segments: [18, 18, 18], lda: 18), bias: true, seed: 98)
    }

    func testKernelsTallyWithBLASSizedProducts() {
        // One product of the real MiniLM's size (T = 128: 16 full tiles, 12 full panels) and one with a long k.
        check(Case(m: 128, k: 384, segments: [384], lda: 384), bias: true, seed: 7)
        check(Case(m: 5, k: 1536, segments: [40], lda: 1536), bias: false, seed: 8)
    }

    /// A row's result is bit-identical whether it runs alone (the one-row kernel) or inside a tile.
    func testOneRowEqualsTheSameRowInATileExactly() {
        var seed: UInt64 = 77
        let m = 9, k = 45, n = 150
        let a = Self.random(m * k, seed: &seed), w = Self.random(n * k, seed: &seed), bias = Self.random(n, seed: &seed)
        let packed = w.withUnsafeBufferPointer { PackedMatrix(weights: $0.baseAddress!, n: n, k: k) }
        defer { packed.deallocate() }
        Self.forEachPackedFamily { family in
            var all = [Float](repeating: 0, count: m * n), one = [Float](repeating: 0, count: n)
            PackedGEMM.multiply(a, lda: k, m: m, by: packed, panels: 0..<packed.panelCount, bias: bias, into: &all, ldc: n)
            for r in [0, 4, 5, 6, 8] {
                a.withUnsafeBufferPointer { ap in
                    PackedGEMM.multiply(ap.baseAddress! + r * k, lda: k, m: 1, by: packed, panels: 0..<packed.panelCount,
                                        bias: bias, into: &one, ldc: n)
                }
                XCTAssertEqual(one, Array(all[(r * n)..<((r + 1) * n)]), "\(family): row \(r)")
            }
        }
    }

    /// The run-time check reads this processor's flags and asks for every flag of the x86-64-v4 level.
    func testSupportCheckReadsTheProcessorFlags() throws {
        #if os(Linux) && arch(x86_64)
        let flags = Processor.flags
        XCTAssertTrue(flags.contains("sse2"), "no x86-64 flags read from /proc/cpuinfo: \(flags.sorted().prefix(8))")
        XCTAssertEqual(Processor.canRunAVX512(flags: flags), flags.contains("avx512f") && flags.contains("avx512bw")
                       && flags.contains("avx512dq") && flags.contains("avx512vl") && flags.contains("avx512cd"))
        #endif
        let v4: Set<String> = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "fma", "bmi1", "bmi2",
                               "f16c", "movbe", "abm", "sse2"]
        XCTAssertTrue(Processor.canRunAVX512(flags: v4))
        for missing in ["avx512bw", "avx512vl", "fma"] {
            XCTAssertFalse(Processor.canRunAVX512(flags: v4.subtracting([missing])), "without \(missing)")
        }
        XCTAssertFalse(Processor.canRunAVX512(flags: []))
        print("PackedGEMM: families available here \(KernelFamily.available.map(\.rawValue)), running \(PackedGEMM.family)")
    }

    /// `COFI_KERNELS`: each available family is chosen as asked, an unavailable or unknown one is refused naming
    /// what runs here, and nothing chooses the best available; a build whose SIMD level the processor lacks gets a
    /// message naming the missing features.
    func testKernelFamilySelection() throws {
        let available = KernelFamily.available
        XCTAssertEqual(available.last, .blas)
        XCTAssertEqual(try KernelFamily.choose(environment: nil).family, available[0])
        XCTAssertEqual(try KernelFamily.choose(environment: "").forced, false)
        for family in available {
            let s = try KernelFamily.choose(environment: family.rawValue.uppercased())
            XCTAssertEqual(s.family, family)
            XCTAssertTrue(s.forced)
        }
        for family in KernelFamily.allCases where !available.contains(family) {
            XCTAssertThrowsError(try KernelFamily.choose(environment: family.rawValue)) { error in
                XCTAssertTrue("\(error)".contains("cannot run here"), "\(error)")
                XCTAssertTrue("\(error)".contains("available: ") && "\(error)".contains("generic, blas"), "\(error)")
            }
        }
        XCTAssertThrowsError(try KernelFamily.choose(environment: "sse")) { error in
            XCTAssertTrue("\(error)".contains("expected one of avx512, avx2, neon, generic, blas"), "\(error)")
        }
        // Packed families run the training products when asked for, and by default in optimised builds only (the
        // unoptimised kernels of a debug build are slower than BLAS); BLAS never packs.
        for family in KernelFamily.allCases {
            XCTAssertEqual(KernelSelection(family: family, reason: "", forced: true, error: nil).packsTrainingProducts,
                           family != .blas)
            #if DEBUG
            XCTAssertFalse(KernelSelection(family: family, reason: "", forced: false, error: nil).packsTrainingProducts)
            #else
            XCTAssertEqual(KernelSelection(family: family, reason: "", forced: false, error: nil).packsTrainingProducts,
                           family != .blas)
            #endif
        }
        #if os(Linux) && arch(x86_64)
        // Linux x86-64 builds carry both x86 families; which run follows the processor's flags.
        XCTAssertEqual(KernelFamily.available.contains(.avx512), Processor.canRunAVX512())
        XCTAssertEqual(KernelFamily.available.contains(.avx2), Processor.haswellFeatures.isSubset(of: Processor.flags))
        XCTAssertNil(KernelFamily.unavailability(.avx2, flags: Processor.avx512Features))
        XCTAssertEqual(KernelFamily.unavailability(.avx512, flags: Processor.haswellFeatures),
                       "the processor lacks avx512bw, avx512cd, avx512dq, avx512f, avx512vl")
        XCTAssertFalse(KernelFamily.available.contains(.neon))
        #endif
        // The build check: nothing to say for a processor with every feature, the missing ones named otherwise.
        XCTAssertNil(Processor.buildMismatch(flags: Processor.avx512Features))
        if !Processor.buildFeatures.isEmpty {
            let message = try XCTUnwrap(Processor.buildMismatch(flags: ["sse2", "avx"]))
            XCTAssertTrue(message.contains("lacks abm, avx2, bmi1, bmi2, f16c, fma, movbe"), message)
        }
        XCTAssertNil(Processor.buildMismatch(flags: []), "unknown flags: no claim")
    }
}

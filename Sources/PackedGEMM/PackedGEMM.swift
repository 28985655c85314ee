import GEMMAVX2
import GEMMAVX512
import GEMMGeneric
import GEMMNEON
import Platform

/// A weight matrix W [n, k] (row-major, as a linear layer stores it: one row per output) packed once for
/// C = A · Wᵀ: column panels of 32 outputs, each panel k rows of 32 floats (W[j, kk] for the panel's outputs j,
/// zero past the last output), so the kernel streams one panel with two 16-lane loads per k.
///
/// A matrix can stack several weights that share k (a layer's query, key and value projections): each
/// segment starts a new panel and writes its own output columns, so a segment's panels can run alone
/// (the keys and values of the last attention layer, or the queries of its [CLS] rows).
public struct PackedMatrix {
    /// Output columns per panel.
    public static let panelWidth = 32

    /// The reduction length (input features) and the number of outputs over all segments.
    public let k: Int
    public let n: Int
    /// The panels: `panelCount` blocks of k · 32 floats.
    public let data: UnsafeMutablePointer<Float>
    public let panelCount: Int
    /// First output column and number of valid outputs (1…32) of each panel.
    public let panelColumn: [Int]
    public let panelOutputs: [Int]
    /// The panels of each segment, in order.
    public let segmentPanels: [Range<Int>]

    /// Packs the weights `segments` (each [rows, k] row-major, rows ≥ 0) stacked along the outputs.
    /// `k` ≥ 0; a segment with 0 rows has no panels.
    public init(k: Int, segments: [(weights: UnsafePointer<Float>, rows: Int)]) {
        let P = Self.panelWidth
        var columns: [Int] = [], outputs: [Int] = [], ranges: [Range<Int>] = []
        var column = 0
        for s in segments {
            let first = columns.count
            var r = 0
            while r < s.rows {
                columns.append(column + r)
                outputs.append(min(P, s.rows - r))
                r += P
            }
            ranges.append(first..<columns.count)
            column += s.rows
        }
        self.k = k
        self.n = column
        self.panelCount = columns.count
        self.panelColumn = columns
        self.panelOutputs = outputs
        self.segmentPanels = ranges
        let data = UnsafeMutablePointer<Float>.allocate(capacity: max(1, columns.count * k * P))
        data.initialize(repeating: 0, count: max(1, columns.count * k * P))
        var p = 0
        for s in segments {
            PackedGEMM.packRows(s.weights, ld: k, n: s.rows, k: k, into: data + p * k * P)
            p += (s.rows + P - 1) / P
        }
        self.data = data
    }

    /// Packs one weight W [n, k].
    public init(weights: UnsafePointer<Float>, n: Int, k: Int) {
        self.init(k: k, segments: [(weights, n)])
    }

    /// Floats held (the panels, padding included).
    public var storedCount: Int { panelCount * k * Self.panelWidth }

    public func deallocate() { data.deallocate() }
}

/// Matrix products against pre-packed weights: C[m, cols] = A[m, k] · Wᵀ (+ bias) over a range of W's panels, on
/// the calling thread (the caller splits panels or rows across threads), run by a kernel family chosen at run time.
///
/// The register tiles are in `GEMMTiles`; each family's module compiles them for its instruction set
/// (`GEMMAVX512`: 8 × 32 tiles of 16-lane vectors for x86-64-v4; `GEMMAVX2`: 6 × 16 tiles of 8-lane vectors for
/// x86-64-v3; `GEMMNEON`: the same 6 × 16 tiles on arm64; `GEMMGeneric`: portable 4 × 16 tiles with the build's own
/// flags). Every family sums each output over k in order from 0 in one fused multiply-add chain, so all give the
/// same bits, and a row's result does not depend on the batch it ran in. `family` says which one runs.
public enum PackedGEMM {
    /// The family `multiply` runs: `KernelFamily.selected` unless that is BLAS, then the best packed family
    /// available (the inference engine asks `KernelFamily.selected` before packing at all). Tests and benchmarks
    /// set it to compare families; it must be one that runs here (`KernelFamily.available`).
    nonisolated(unsafe) public static var family: KernelFamily = defaultFamily {
        didSet {
            precondition(family.usesPackedGEMM && KernelFamily.available.contains(family),
                         "PackedGEMM.family \(family) cannot run here")
            kernels = Kernels.of(family)
        }
    }

    /// The packed family a process starts with.
    public static var defaultFamily: KernelFamily {
        let selected = KernelFamily.selected.family
        return selected.usesPackedGEMM ? selected : KernelFamily.available.first(where: \.usesPackedGEMM) ?? .generic
    }

    /// C[r, panelColumn[p] + j] = Σ_kk A[r, kk] · W[panelColumn[p] + j, kk] (+ bias[panelColumn[p] + j]) for rows
    /// r < m and the outputs j of every panel p in `panels` (added to C when `accumulate`). A is [m, k] with
    /// leading dimension `lda`; C has leading dimension `ldc`; `bias` is indexed by output column.
    public static func multiply(_ a: UnsafePointer<Float>, lda: Int, m: Int, by w: PackedMatrix, panels: Range<Int>,
                                bias: UnsafePointer<Float>?, accumulate: Bool = false,
                                into c: UnsafeMutablePointer<Float>, ldc: Int) {
        let P = PackedMatrix.panelWidth
        // Runs of panels whose outputs are contiguous (a segment's panels), each as one product.
        var p = panels.lowerBound
        while p < panels.upperBound {
            var end = p + 1
            while end < panels.upperBound && w.panelOutputs[end - 1] == P && w.panelColumn[end] == w.panelColumn[end - 1] + P {
                end += 1
            }
            let column = w.panelColumn[p]
            let n = w.panelColumn[end - 1] + w.panelOutputs[end - 1] - column
            multiply(a, lda: lda, m: m, panels: w.data + p * w.k * P, k: w.k, n: n, bias: bias.map { $0 + column },
                     accumulate: accumulate, into: c + column, ldc: ldc)
            p = end
        }
    }

    /// Floats that `packRows` / `packColumns` write for n outputs over k: ⌈n/32⌉ panels of k · 32.
    public static func packedCount(n: Int, k: Int) -> Int { (n + 31) / 32 * 32 * k }

    /// Packs W [n, k] (row j at w + j·ld), times `scale`, into ⌈n/32⌉ consecutive panels at `out`, zero past
    /// output n.
    public static func packRows(_ w: UnsafePointer<Float>, ld: Int, n: Int, k: Int, scale: Float = 1,
                                into out: UnsafeMutablePointer<Float>) {
        let P = PackedMatrix.panelWidth
        var r = 0
        while r < n {
            let panel = out + r * k
            let width = min(P, n - r)
            if width < P { panel.update(repeating: 0, count: k * P) }
            for j in 0..<width {
                let row = w + (r + j) * ld
                for kk in 0..<k { panel[kk * P + j] = scale * row[kk] }
            }
            r += P
        }
    }

    /// Packs W = Bᵀ for B [k, n] (row kk at b + kk·ld), times `scale` — the panels of a product C = A · B — into
    /// ⌈n/32⌉ consecutive panels at `out`, zero past output n.
    public static func packColumns(_ b: UnsafePointer<Float>, ld: Int, k: Int, n: Int, scale: Float = 1,
                                   into out: UnsafeMutablePointer<Float>) {
        let P = PackedMatrix.panelWidth
        var j = 0
        while j < n {
            let panel = out + j * k
            let width = min(P, n - j)
            for kk in 0..<k {
                let dst = panel + kk * P, src = b + kk * ld + j
                if scale == 1 {
                    dst.update(from: src, count: width)
                } else {
                    for j in 0..<width { dst[j] = scale * src[j] }
                }
                if width < P { (dst + width).update(repeating: 0, count: P - width) }
            }
            j += P
        }
    }

    /// C[m, n] = A[m, k] · Wᵀ (+ C when `accumulate`) (+ bias[n]) for n outputs packed at `panels` by `packRows`
    /// or `packColumns`, on `family`'s kernels. A is [m, k] with leading dimension `lda` — or, when `transposedA`,
    /// stored as its transpose [k, m] with leading dimension `lda` ≥ m, read in place; C has leading dimension `ldc`.
    /// `continuing`: each output's chain continues from the partial sum already in C (the earlier depth blocks of
    /// the same product), so a product split along k gives the unsplit product's bits; not with `accumulate`.
    @inline(__always)
    public static func multiply(_ a: UnsafePointer<Float>, lda: Int, transposedA: Bool = false, m: Int,
                                panels: UnsafePointer<Float>, k: Int, n: Int, bias: UnsafePointer<Float>?,
                                accumulate: Bool = false, continuing: Bool = false,
                                into c: UnsafeMutablePointer<Float>, ldc: Int) {
        let rowStep = transposedA ? 1 : lda, depthStep = transposedA ? lda : 1
        kernels.multiply(a, rowStep, depthStep, m, panels, k, n, bias, accumulate, continuing, c, ldc)
    }

    /// `family`'s register-only fused multiply-add peak on this thread (the denominator of "% of peak"):
    /// `iterations` rounds of 12 chains; returns the flops it performed and a value to keep.
    public static func fmaPeak(family: KernelFamily, iterations: Int) -> (flops: Double, value: Float) {
        let r = Kernels.of(family).fmaPeak(iterations)
        return (2 * 12 * Double(r.lanes) * Double(iterations), r.value)
    }

    /// The entry points of `family`'s module (`FamilyKernels` in GEMMAVX512, GEMMAVX2, GEMMNEON, GEMMGeneric).
    struct Kernels {
        let multiply: (UnsafePointer<Float>, Int, Int, Int, UnsafePointer<Float>, Int, Int, UnsafePointer<Float>?, Bool,
                       Bool, UnsafeMutablePointer<Float>, Int) -> Void
        let fmaPeak: (Int) -> (value: Float, lanes: Int)

        static func of(_ family: KernelFamily) -> Kernels {
            switch family {
            #if arch(x86_64)
            case .avx512: return Kernels(multiply: GEMMAVX512.FamilyKernels.multiply, fmaPeak: GEMMAVX512.FamilyKernels.fmaPeak)
            case .avx2: return Kernels(multiply: GEMMAVX2.FamilyKernels.multiply, fmaPeak: GEMMAVX2.FamilyKernels.fmaPeak)
            #endif
            #if arch(arm64)
            case .neon: return Kernels(multiply: GEMMNEON.FamilyKernels.multiply, fmaPeak: GEMMNEON.FamilyKernels.fmaPeak)
            #endif
            default: return Kernels(multiply: GEMMGeneric.FamilyKernels.multiply, fmaPeak: GEMMGeneric.FamilyKernels.fmaPeak)
            }
        }
    }

    /// `family`'s entry points, kept with it.
    nonisolated(unsafe) static var kernels = Kernels.of(defaultFamily)

    /// The same product in Double, naively, from the unpacked weights W [n, k]: the tests' oracle.
    public static func naive(_ a: UnsafePointer<Float>, lda: Int, m: Int, weights w: UnsafePointer<Float>, n: Int,
                             k: Int, bias: UnsafePointer<Float>?) -> [Float] {
        var out = [Float](repeating: 0, count: m * n)
        for r in 0..<m {
            for j in 0..<n {
                var s = bias.map { Double($0[j]) } ?? 0
                for kk in 0..<k { s += Double(a[r * lda + kk]) * Double(w[j * k + kk]) }
                out[r * n + j] = Float(s)
            }
        }
        return out
    }
}

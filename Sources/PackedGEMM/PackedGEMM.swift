import Platform
#if os(Linux)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

/// Matrix products against pre-packed weights, for the inference engine: C[m, cols] = A[m, k] · Wᵀ (+ bias) over
/// a range of W's panels, on the calling thread (the caller splits panels across threads).
///
/// The kernel keeps an 8 × 32 tile of C in sixteen 16-lane registers and reads A in place (row-major, any
/// leading dimension): each k step broadcasts one value of each of the 8 rows and does 16 fused multiply-adds
/// against the panel's two vectors. Rows past m in the last tile repeat row m − 1 and are not stored; a single
/// row (a [CLS] row) runs its own kernel over four panels at once. Every output sums over k in order from 0 in
/// both kernels, so results do not depend on the batch a row ran in.
///
/// Release builds of this module on Linux x86-64 are compiled for the x86-64-v4 level (AVX-512 F/BW/CD/DQ/VL),
/// where a 16-lane vector is one register; `isSupported` says whether this processor can run them (callers fall
/// back to BLAS when it cannot). Other builds compile the same code for the build's own target.
public enum PackedGEMM {
    typealias V = SIMD16<Float>

    /// Whether this build of the kernels can run on this processor: true unless the module was compiled for
    /// AVX-512 (release, Linux x86-64) and the processor lacks a feature of that level (`Platform.Processor`).
    public static let isSupported: Bool = {
        #if AVX512_KERNELS
        return Processor.canRunAVX512()
        #else
        return true
        #endif
    }()

    /// Whether this module was compiled for AVX-512 (the kernels' 16-lane vectors are single registers).
    public static var compiledForAVX512: Bool {
        #if AVX512_KERNELS
        return true
        #else
        return false
        #endif
    }

    /// C[r, panelColumn[p] + j] = Σ_kk A[r, kk] · W[panelColumn[p] + j, kk] (+ bias[panelColumn[p] + j]) for rows
    /// r < m and the outputs j of every panel p in `panels`. A is [m, k] with leading dimension `lda`; C has
    /// leading dimension `ldc`; `bias` is indexed by output column.
    public static func multiply(_ a: UnsafePointer<Float>, lda: Int, m: Int, by w: PackedMatrix, panels: Range<Int>,
                                bias: UnsafePointer<Float>?, into c: UnsafeMutablePointer<Float>, ldc: Int) {
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
                     into: c + column, ldc: ldc)
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

    /// C[m, n] = A[m, k] · Wᵀ (+ bias[n]) (+ C when `accumulate`) for n outputs packed at `panels` by `packRows`
    /// or `packColumns`; A has leading dimension `lda`, C `ldc`.
    public static func multiply(_ a: UnsafePointer<Float>, lda: Int, m: Int, panels: UnsafePointer<Float>, k: Int,
                                n: Int, bias: UnsafePointer<Float>?, accumulate: Bool = false,
                                into c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m <= 0 { return }
        let P = PackedMatrix.panelWidth
        if m == 1 {
            var j = 0
            while j < n {
                let count = min(4, (n - j + P - 1) / P)
                let lastOutputs = min(P, n - j - (count - 1) * P)
                row1(a, b: panels + j * k, k: k, panels: count, c: c + j, lastOutputs: lastOutputs,
                     bias: bias.map { $0 + j }, accumulate: accumulate)
                j += count * P
            }
            return
        }
        var j = 0
        while j < n {
            let b = panels + j * k, outputs = min(P, n - j)
            var r = 0
            while r < m {
                tile8(a + r * lda, lda: lda, rows: min(8, m - r), b: b, k: k, c: c + r * ldc + j, ldc: ldc,
                      outputs: outputs, bias: bias.map { $0 + j }, accumulate: accumulate)
                r += 8
            }
            j += P
        }
    }

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }

    /// Stores `v0 | v1` (32 values, plus the bias when given, plus what is there when `accumulate`) to the first
    /// `outputs` floats at `c`.
    @inline(__always)
    static func store(_ v0: V, _ v1: V, to c: UnsafeMutablePointer<Float>, outputs: Int, bias: UnsafePointer<Float>?,
                      accumulate: Bool) {
        var x0 = v0, x1 = v1
        if accumulate {
            if outputs == 32 {
                x0 += load(c)
                x1 += load(c + 16)
            } else {
                for j in 0..<outputs { if j < 16 { x0[j] += c[j] } else { x1[j - 16] += c[j] } }
            }
        }
        if let bias {
            if outputs == 32 {
                x0 += load(bias)
                x1 += load(bias + 16)
            } else {
                for j in 0..<outputs { if j < 16 { x0[j] += bias[j] } else { x1[j - 16] += bias[j] } }
            }
        }
        if outputs == 32 {
            UnsafeMutableRawPointer(c).storeBytes(of: x0, as: V.self)
            UnsafeMutableRawPointer(c + 16).storeBytes(of: x1, as: V.self)
        } else {
            for j in 0..<outputs { c[j] = j < 16 ? x0[j] : x1[j - 16] }
        }
    }

    /// One 8 × 32 tile (rows 1…8 valid) over the whole of k.
    @inline(never)
    static func tile8(_ a: UnsafePointer<Float>, lda: Int, rows: Int, b: UnsafePointer<Float>, k: Int,
                      c: UnsafeMutablePointer<Float>, ldc: Int, outputs: Int, bias: UnsafePointer<Float>?,
                      accumulate: Bool) {
        let last = rows - 1
        let a0 = a, a1 = a + min(1, last) * lda, a2 = a + min(2, last) * lda, a3 = a + min(3, last) * lda
        let a4 = a + min(4, last) * lda, a5 = a + min(5, last) * lda, a6 = a + min(6, last) * lda
        let a7 = a + min(7, last) * lda
        var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V(), c30 = V(), c31 = V()
        var c40 = V(), c41 = V(), c50 = V(), c51 = V(), c60 = V(), c61 = V(), c70 = V(), c71 = V()
        var bp = b
        for kk in 0..<k {
            let b0 = load(bp), b1 = load(bp + 16)
            var x = V(repeating: a0[kk]); c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
            x = V(repeating: a1[kk]); c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = V(repeating: a2[kk]); c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = V(repeating: a3[kk]); c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
            x = V(repeating: a4[kk]); c40 = c40.addingProduct(x, b0); c41 = c41.addingProduct(x, b1)
            x = V(repeating: a5[kk]); c50 = c50.addingProduct(x, b0); c51 = c51.addingProduct(x, b1)
            x = V(repeating: a6[kk]); c60 = c60.addingProduct(x, b0); c61 = c61.addingProduct(x, b1)
            x = V(repeating: a7[kk]); c70 = c70.addingProduct(x, b0); c71 = c71.addingProduct(x, b1)
            bp += 32
        }
        store(c00, c01, to: c, outputs: outputs, bias: bias, accumulate: accumulate)
        if rows > 1 { store(c10, c11, to: c + ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 2 { store(c20, c21, to: c + 2 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 3 { store(c30, c31, to: c + 3 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 4 { store(c40, c41, to: c + 4 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 5 { store(c50, c51, to: c + 5 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 6 { store(c60, c61, to: c + 6 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 7 { store(c70, c71, to: c + 7 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
    }

    /// One row against up to four consecutive panels (`count` of them; the last has `lastOutputs` outputs): eight
    /// independent accumulators, each summing over k in order from 0 as `tile8` does, so a row's result does not
    /// depend on how many rows it ran with (a sequence predicted alone equals the same sequence in a batch).
    @inline(never)
    static func row1(_ a: UnsafePointer<Float>, b: UnsafePointer<Float>, k: Int, panels count: Int,
                     c: UnsafeMutablePointer<Float>, lastOutputs: Int, bias: UnsafePointer<Float>?, accumulate: Bool) {
        let stride = k * 32
        let p0 = b, p1 = b + min(1, count - 1) * stride, p2 = b + min(2, count - 1) * stride
        let p3 = b + min(3, count - 1) * stride
        var s0 = V(), s1 = V(), t0 = V(), t1 = V(), u0 = V(), u1 = V(), v0 = V(), v1 = V()
        for kk in 0..<k {
            let x = V(repeating: a[kk]), o = kk * 32
            s0 = s0.addingProduct(x, load(p0 + o)); s1 = s1.addingProduct(x, load(p0 + o + 16))
            t0 = t0.addingProduct(x, load(p1 + o)); t1 = t1.addingProduct(x, load(p1 + o + 16))
            u0 = u0.addingProduct(x, load(p2 + o)); u1 = u1.addingProduct(x, load(p2 + o + 16))
            v0 = v0.addingProduct(x, load(p3 + o)); v1 = v1.addingProduct(x, load(p3 + o + 16))
        }
        func outputs(_ i: Int) -> Int { i == count - 1 ? lastOutputs : 32 }
        store(s0, s1, to: c, outputs: outputs(0), bias: bias, accumulate: accumulate)
        if count > 1 { store(t0, t1, to: c + 32, outputs: outputs(1), bias: bias.map { $0 + 32 }, accumulate: accumulate) }
        if count > 2 { store(u0, u1, to: c + 64, outputs: outputs(2), bias: bias.map { $0 + 64 }, accumulate: accumulate) }
        if count > 3 { store(v0, v1, to: c + 96, outputs: outputs(3), bias: bias.map { $0 + 96 }, accumulate: accumulate) }
    }

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


/// The AVX2 family: `Tiles.multiply8` (6 × 16 tiles of 8-lane vectors, twelve accumulators in sixteen ymm
/// registers) compiled for the x86-64-v3 level, AVX2 + FMA (Linux x86-64 builds; see Package.swift). Runs only
/// where `Platform.KernelFamily.avx2` is available.
public enum AVX2Kernels {
    @inline(never)
    public static func multiply(_ a: UnsafePointer<Float>, rowStep: Int, depthStep: Int, m: Int, panels: UnsafePointer<Float>, k: Int,
                                n: Int, bias: UnsafePointer<Float>?, accumulate: Bool, continuing: Bool,
                                into c: UnsafeMutablePointer<Float>, ldc: Int) {
        Tiles.multiply8(a, rowStep: rowStep, depthStep: depthStep, m: m, panels: panels, k: k, n: n, bias: bias, accumulate: accumulate,
                        continuing: continuing, into: c, ldc: ldc)
    }

    /// This family's register-only peak (see `Tiles.fmaPeak`): 2 · 12 · lanes · iterations flops; `lanes` says how
    /// many.
    @inline(never)
    public static func fmaPeak(iterations: Int) -> (value: Float, lanes: Int) {
        (Tiles.fmaPeak(SIMD8<Float>.self, iterations: iterations), SIMD8<Float>.scalarCount)
    }
}

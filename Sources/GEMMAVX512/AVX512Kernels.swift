
/// The AVX-512 family: `Tiles.multiply16` (8 × 32 tiles of 16-lane vectors) compiled for the x86-64-v4 level
/// (Linux x86-64 builds; see Package.swift). Runs only where `Platform.KernelFamily.avx512` is available.
public enum AVX512Kernels {
    @inline(never)
    public static func multiply(_ a: UnsafePointer<Float>, rowStep: Int, depthStep: Int, m: Int, panels: UnsafePointer<Float>, k: Int,
                                n: Int, bias: UnsafePointer<Float>?, accumulate: Bool, continuing: Bool,
                                into c: UnsafeMutablePointer<Float>, ldc: Int) {
        Tiles.multiply16(a, rowStep: rowStep, depthStep: depthStep, m: m, panels: panels, k: k, n: n, bias: bias, accumulate: accumulate,
                         continuing: continuing, into: c, ldc: ldc)
    }

    /// This family's register-only peak (see `Tiles.fmaPeak`): 2 · 12 · lanes · iterations flops; `lanes` says how
    /// many.
    @inline(never)
    public static func fmaPeak(iterations: Int) -> (value: Float, lanes: Int) {
        (Tiles.fmaPeak(SIMD16<Float>.self, iterations: iterations), SIMD16<Float>.scalarCount)
    }
}


/// The generic family: `Tiles.multiplyPortable` (4 × 16 tiles of 8-lane vectors, eight accumulators) compiled
/// with the build's own flags — what every other module of the build assumes (x86-64-v3 in Linux x86-64 builds,
/// the target's baseline elsewhere). Runs everywhere this build runs.
public enum GenericKernels {
    @inline(never)
    public static func multiply(_ a: UnsafePointer<Float>, rowStep: Int, depthStep: Int, m: Int, panels: UnsafePointer<Float>, k: Int,
                                n: Int, bias: UnsafePointer<Float>?, accumulate: Bool, continuing: Bool,
                                into c: UnsafeMutablePointer<Float>, ldc: Int) {
        Tiles.multiplyPortable(a, rowStep: rowStep, depthStep: depthStep, m: m, panels: panels, k: k, n: n, bias: bias, accumulate: accumulate,
                               continuing: continuing, into: c, ldc: ldc)
    }

    /// This family's register-only peak (see `Tiles.fmaPeak`): 2 · 12 · lanes · iterations flops; `lanes` says how
    /// many.
    @inline(never)
    public static func fmaPeak(iterations: Int) -> (value: Float, lanes: Int) {
        (Tiles.fmaPeak(SIMD8<Float>.self, iterations: iterations), SIMD8<Float>.scalarCount)
    }
}

#if arch(arm64)

/// The NEON family (arm64 only; NEON is the architecture's baseline, so no flags): `Tiles.multiply8` — 6 × 16
/// tiles whose twelve 8-lane accumulators take 24 of the 32 q registers. On other architectures this module is
/// empty.
public enum NEONKernels {
    @inline(never)
    public static func multiply(_ a: UnsafePointer<Float>, rowStep: Int, depthStep: Int, m: Int, panels: UnsafePointer<Float>, k: Int,
                                n: Int, bias: UnsafePointer<Float>?, accumulate: Bool,
                                into c: UnsafeMutablePointer<Float>, ldc: Int) {
        Tiles.multiply8(a, rowStep: rowStep, depthStep: depthStep, m: m, panels: panels, k: k, n: n, bias: bias, accumulate: accumulate,
                        into: c, ldc: ldc)
    }
}
#endif

/// Element-wise arithmetic, reductions, broadcasts and slicing on `Variable`s, each with its pullback.

extension Tensor {
    /// Calls `body` with a pointer to the elements.
    @inline(__always)
    public func withPointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try scalars.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    /// Calls `body` with a mutable pointer to the elements.
    @inline(__always)
    public mutating func withMutablePointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try scalars.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    }

    /// Element-wise combination of two equally shaped tensors.
    @inline(__always)
    public func zipMap(_ other: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        precondition(shape == other.shape, "shapes differ: \(shape) vs \(other.shape)")
        return Tensor(shape: shape) { out in
            withPointer { a in other.withPointer { b in for i in 0..<out.count { out[i] = f(a[i], b[i]) } } }
        }
    }

    /// Element-wise map.
    @inline(__always)
    public func map(_ f: (Float) -> Float) -> Tensor {
        Tensor(shape: shape) { out in withPointer { a in for i in 0..<out.count { out[i] = f(a[i]) } } }
    }
}

/// a + b, same shape.
public func + (a: Variable, b: Variable) -> Variable {
    Variable(a.value.zipMap(b.value, +), inputs: [a, b]) { g in
        a.accumulate(g)
        b.accumulate(g)
    }
}

/// a − b, same shape.
public func - (a: Variable, b: Variable) -> Variable {
    Variable(a.value.zipMap(b.value, -), inputs: [a, b]) { g in
        a.accumulate(g)
        b.accumulate(g.map { -$0 })
    }
}

/// a ⊙ b, same shape.
public func * (a: Variable, b: Variable) -> Variable {
    let av = a.value, bv = b.value
    return Variable(av.zipMap(bv, *), inputs: [a, b]) { g in
        if a.requiresGrad { a.accumulate(g.zipMap(bv, *)) }
        if b.requiresGrad { b.accumulate(g.zipMap(av, *)) }
    }
}

/// c · a for a constant c.
public func * (c: Float, a: Variable) -> Variable {
    Variable(a.value.map { c * $0 }, inputs: [a]) { g in a.accumulate(g.map { c * $0 }) }
}

/// a + c for a constant c.
public func + (a: Variable, c: Float) -> Variable {
    Variable(a.value.map { $0 + c }, inputs: [a]) { g in a.accumulate(g) }
}

extension Variable {
    /// Sum of all elements, as a scalar.
    public func sum() -> Variable {
        let shape = value.shape
        var s = 0.0
        for v in value.scalars { s += Double(v) }
        return Variable(Tensor(scalar: Float(s)), inputs: [self]) { [unowned self] g in
            self.accumulate(Tensor(repeating: g.scalar, shape: shape))
        }
    }

    /// Mean of all elements, as a scalar.
    public func mean() -> Variable {
        let n = Float(max(value.count, 1))
        return (1 / n) * sum()
    }

    /// Element-wise square.
    public func squared() -> Variable { self * self }

    /// The same values with another shape of equal count.
    public func reshaped(_ shape: [Int]) -> Variable {
        let old = value.shape
        return Variable(value.reshaped(shape), inputs: [self]) { [unowned self] g in
            self.accumulate(g.reshaped(old))
        }
    }

    /// x[n, c] · z[c / g] with g = C / K: each of the K mask values scales a contiguous group of C/K columns of
    /// the [N, C] view of x. This one broadcast covers every CoFi mask: per head (K = heads, group = head
    /// width), per FFN unit and per hidden dim (group 1), and per layer (K = 1, a scalar).
    /// Gradients: ∂x = g · z (broadcast); ∂z[k] = Σ over rows and the group of columns of g · x.
    public func scaledByGroups(_ z: Variable) -> Variable {
        let x = value, zv = z.value
        let C = x.shape.last ?? 1, N = x.count / max(C, 1), K = zv.count
        precondition(K > 0 && C % K == 0, "mask of \(K) values cannot scale rows of width \(C)")
        let group = C / K
        let y = Tensor(shape: x.shape) { out in
            x.withPointer { xp in zv.withPointer { zp in
                let op = SharedPointer(out.baseAddress!)
                Parallel.forChunks(N, grain: 64) { rows in
                    for n in rows { for k in 0..<K {
                        let s = zp[k], base = n * C + k * group
                        for j in 0..<group { op.base[base + j] = xp[base + j] * s }
                    } }
                }
            } }
        }
        return Variable(y, inputs: [self, z]) { [unowned self] g in
            if self.requiresGrad {
                self.accumulate(Tensor(shape: x.shape) { out in
                    g.withPointer { gp in zv.withPointer { zp in
                        for n in 0..<N { for k in 0..<K {
                            let s = zp[k], base = n * C + k * group
                            for j in 0..<group { out[base + j] = gp[base + j] * s }
                        } }
                    } }
                })
            }
            if z.requiresGrad {
                var dz = [Double](repeating: 0, count: K)
                g.withPointer { gp in x.withPointer { xp in
                    for n in 0..<N { for k in 0..<K {
                        let base = n * C + k * group
                        var s: Float = 0
                        for j in 0..<group { s += gp[base + j] * xp[base + j] }
                        dz[k] += Double(s)
                    } }
                } }
                z.accumulate(Tensor(shape: zv.shape, scalars: dz.map { Float($0) }))
            }
        }
    }

    /// `scaledByGroups(z)`, or self unchanged when there is no mask.
    public func masked(by z: Variable?) -> Variable {
        guard let z else { return self }
        return scaledByGroups(z)
    }

    /// Rows `rows` of the [N, C] view of x, as [rows.count, C] (e.g. the [CLS] token of each sequence).
    public func gatherRows(_ rows: [Int]) -> Variable {
        let x = value
        let C = x.shape.last ?? 1, N = x.count / max(C, 1)
        let y = Tensor(shape: [rows.count, C]) { out in
            x.withPointer { xp in
                for (i, r) in rows.enumerated() {
                    precondition(r >= 0 && r < N, "row \(r) out of range 0..<\(N)")
                    for j in 0..<C { out[i * C + j] = xp[r * C + j] }
                }
            }
        }
        return Variable(y, inputs: [self]) { [unowned self] g in
            var dx = Tensor(zeros: x.shape)
            dx.withMutablePointer { dp in g.withPointer { gp in
                for (i, r) in rows.enumerated() { for j in 0..<C { dp[r * C + j] += gp[i * C + j] } }
            } }
            self.accumulate(dx)
        }
    }

    /// Column j of the [N, C] view of x, as [N].
    public func column(_ j: Int) -> Variable {
        let x = value
        let C = x.shape.last ?? 1, N = x.count / max(C, 1)
        precondition(j >= 0 && j < C, "column \(j) out of range 0..<\(C)")
        let y = Tensor(shape: [N]) { out in x.withPointer { xp in for n in 0..<N { out[n] = xp[n * C + j] } } }
        return Variable(y, inputs: [self]) { [unowned self] g in
            var dx = Tensor(zeros: x.shape)
            dx.withMutablePointer { dp in g.withPointer { gp in for n in 0..<N { dp[n * C + j] = gp[n] } } }
            self.accumulate(dx)
        }
    }
}

/// A node of the reverse-mode gradient graph: a value, its accumulated gradient, and how to send a gradient
/// back to the nodes it was computed from.
///
/// Leaves (parameters, masks, inputs) are made with `Variable(_:requiresGrad:)`. Each differentiable op in
/// `Ops*.swift` creates a node whose `pullback` receives the gradient of the node's value and accumulates into
/// its inputs. While `GradientMode.isEnabled` is false (see `withoutGradients`) or when no input needs a
/// gradient, ops record nothing and keep no activations.
public final class Variable {
    public internal(set) var value: Tensor
    /// Accumulated gradient ∂loss/∂value after `backward()`; nil if none reached this node.
    public var grad: Tensor?
    public let requiresGrad: Bool
    /// An optional name (parameters carry their checkpoint name).
    public var name: String?

    let inputs: [Variable]
    let pullback: ((Tensor) -> Void)?

    /// A leaf node.
    public init(_ value: Tensor, requiresGrad: Bool = false, name: String? = nil) {
        self.value = value
        self.requiresGrad = requiresGrad
        self.name = name
        self.inputs = []
        self.pullback = nil
    }

    /// An interior node; records `pullback` only when gradients are being recorded and some input needs one.
    public init(_ value: Tensor, inputs: [Variable], pullback: @escaping (Tensor) -> Void) {
        self.value = value
        let needs = Variable.recordsGradient(for: inputs)
        self.requiresGrad = needs
        self.inputs = needs ? inputs : []
        self.pullback = needs ? pullback : nil
    }

    public var shape: [Int] { value.shape }

    /// Whether an op over `inputs` records a pullback (and so must save what its backward pass needs).
    public static func recordsGradient(for inputs: [Variable]) -> Bool {
        GradientMode.isEnabled && inputs.contains { $0.requiresGrad }
    }
    public var isLeaf: Bool { pullback == nil }

    /// Adds `g` to this node's gradient (taking it without a copy when there is none yet).
    public func accumulate(_ g: Tensor) {
        guard requiresGrad else { return }
        precondition(g.shape == value.shape, "gradient shape \(g.shape) for value \(value.shape) \(name ?? "")")
        if grad == nil { grad = g; return }
        grad!.scalars.withUnsafeMutableBufferPointer { d in
            g.scalars.withUnsafeBufferPointer { s in
                for i in 0..<d.count { d[i] += s[i] }
            }
        }
    }

    /// Replaces the value of a leaf (an optimiser step, a loaded weight). Interior nodes are immutable.
    public func assign(_ newValue: Tensor) {
        precondition(isLeaf, "assign on an interior node")
        precondition(newValue.shape == value.shape, "assign \(newValue.shape) to \(value.shape) \(name ?? "")")
        value = newValue
    }

    /// Mutates the value of a leaf in place.
    public func update(_ body: (inout Tensor) -> Void) {
        precondition(isLeaf, "update on an interior node")
        body(&value)
    }

    /// Back-propagates from this node: seeds its gradient with `seed` (ones for a scalar when nil) and runs every
    /// pullback in reverse topological order. Gradients accumulate into leaves (call `zeroGrad` between steps);
    /// interior gradients are released as soon as they have been propagated.
    ///
    /// `leafReady`, when given, is called with each leaf that needs a gradient as soon as the last pullback that
    /// can add to it has run — its gradient is then final while the rest of the pass goes on (how a data-parallel
    /// run starts reducing gradients during the backward pass). Leaves the pass does not reach are not reported.
    public func backward(seed: Tensor? = nil, leafReady: ((Variable) -> Void)? = nil) {
        guard requiresGrad else { return }
        let order = topologicalOrder()
        // For each leaf, how many interior nodes still have to send it a gradient.
        var pending: [ObjectIdentifier: Int] = [:]
        if leafReady != nil {
            for node in order where node.pullback != nil {
                for input in node.inputs where input.isLeaf && input.requiresGrad {
                    pending[ObjectIdentifier(input), default: 0] += 1
                }
            }
        }
        accumulate(seed ?? Tensor(repeating: 1, shape: value.shape))
        for node in order.reversed() {
            guard let pb = node.pullback else { continue }
            if let g = node.grad {
                node.grad = nil
                pb(g)
            }
            guard let leafReady else { continue }
            for input in node.inputs where input.isLeaf && input.requiresGrad {
                let id = ObjectIdentifier(input)
                let left = pending[id, default: 1] - 1
                pending[id] = left
                if left == 0 { leafReady(input) }
            }
        }
    }

    /// Nodes reachable from self through nodes that need gradients, inputs before the nodes that use them.
    private func topologicalOrder() -> [Variable] {
        var order: [Variable] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Variable, Bool)] = [(self, false)]
        while let (node, expanded) = stack.popLast() {
            if expanded { order.append(node); continue }
            if !visited.insert(ObjectIdentifier(node)).inserted { continue }
            stack.append((node, true))
            for p in node.inputs where p.requiresGrad && !visited.contains(ObjectIdentifier(p)) {
                stack.append((p, false))
            }
        }
        return order
    }
}

/// Whether ops record the gradient graph. Inference turns it off with `withoutGradients`.
public enum GradientMode {
    nonisolated(unsafe) public internal(set) static var isEnabled = true
}

/// Runs `body` without recording gradients (no graph, no saved activations).
public func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
    let previous = GradientMode.isEnabled
    GradientMode.isEnabled = false
    defer { GradientMode.isEnabled = previous }
    return try body()
}

import BERT
import Foundation
import Tensor

/// Parameters that share a learning rate and a weight decay.
public struct ParameterGroup {
    public var name: String
    public var parameters: [(String, Variable)]
    /// Base learning rate; the schedule multiplies it. May be negative: Adam then ascends (CoFi's λ, cofi-spec §4).
    public var learningRate: Float
    public var weightDecay: Float
    /// Whether the trainer's schedule applies to this group (CoFi's mask and λ groups keep a constant rate).
    public var followsSchedule: Bool

    public init(name: String, parameters: [(String, Variable)], learningRate: Float, weightDecay: Float = 0,
                followsSchedule: Bool = true) {
        self.name = name
        self.parameters = parameters
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        self.followsSchedule = followsSchedule
    }

    /// Hugging Face's two groups for a model: weight decay on everything except biases and LayerNorm weights.
    public static func standard(_ parameters: [(String, Variable)], learningRate: Float,
                                weightDecay: Float) -> [ParameterGroup] {
        let noDecay = parameters.filter { CheckpointKeys.isBiasOrNorm($0.0) }
        let decay = parameters.filter { !CheckpointKeys.isBiasOrNorm($0.0) }
        return [ParameterGroup(name: "decay", parameters: decay, learningRate: learningRate, weightDecay: weightDecay),
                ParameterGroup(name: "no_decay", parameters: noDecay, learningRate: learningRate, weightDecay: 0)]
    }
}

/// Learning-rate multiplier per optimiser step (0-based), as Hugging Face's schedulers.
public enum LearningRateSchedule: Equatable, Codable, Sendable {
    case constant
    /// Linear warm-up from 0 over `warmupSteps`, then linear decay to 0 at `totalSteps`.
    case linear(warmupSteps: Int, totalSteps: Int)

    public func multiplier(atStep step: Int) -> Float {
        switch self {
        case .constant: return 1
        case let .linear(warmup, total):
            if step < warmup { return Float(step) / Float(max(1, warmup)) }
            return max(0, Float(total - step) / Float(max(1, total - warmup)))
        }
    }
}

/// AdamW (Loshchilov & Hutter) exactly as `torch.optim.AdamW`: decoupled decay p ← p·(1 − lr·wd), then the
/// bias-corrected Adam step p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε).
public final class AdamW {
    public var groups: [ParameterGroup]
    public let beta1: Float, beta2: Float, eps: Float
    /// Optimiser steps taken (t of the bias corrections).
    public private(set) var stepCount = 0
    /// First and second moments, keyed by parameter name.
    private var m: [String: [Float]] = [:]
    private var v: [String: [Float]] = [:]

    public init(groups: [ParameterGroup], beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8) {
        var seen = Set<String>()
        for g in groups { for (n, _) in g.parameters { precondition(seen.insert(n).inserted, "parameter \(n) in two groups") } }
        self.groups = groups
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
    }

    /// One step on every parameter that has a gradient; the learning rate of a group that follows the schedule
    /// is multiplied by `scheduleMultiplier`.
    public func step(scheduleMultiplier: Float = 1) {
        stepCount += 1
        let t = Float(stepCount)
        let c1 = 1 - pow(beta1, t), c2 = (1 - pow(beta2, t)).squareRoot()
        for g in groups {
            let lr = g.learningRate * (g.followsSchedule ? scheduleMultiplier : 1)
            let decay = 1 - lr * g.weightDecay
            let stepSize = lr / c1
            for (name, p) in g.parameters {
                guard let grad = p.grad, p.value.count > 0 else { continue }
                // Taken out of the tables while updated, so that they are uniquely referenced and change in place
                // (a copy of every moment on every step otherwise).
                var mi = m.removeValue(forKey: name) ?? [Float](repeating: 0, count: p.value.count)
                var vi = v.removeValue(forKey: name) ?? [Float](repeating: 0, count: p.value.count)
                let b1 = beta1, b2 = beta2, e = eps
                p.update { value in
                    value.withMutablePointer { wp in grad.withPointer { gp in
                        mi.withUnsafeMutableBufferPointer { mb in vi.withUnsafeMutableBufferPointer { vb in
                            // One pass over the weights, the gradient and both moments, split across the workers
                            // (every element on its own: the same values however it is split).
                            let w = SharedPointer(wp), g = SharedPointer(UnsafeMutablePointer(mutating: gp))
                            let mp = SharedPointer(mb.baseAddress!), vp = SharedPointer(vb.baseAddress!)
                            Parallel.forChunks(mb.count, grain: 1 << 15) { r in
                                for i in r {
                                    Self.update(&w.base[i], m: &mp.base[i], v: &vp.base[i], gradient: g.base[i],
                                                decay: decay, beta1: b1, beta2: b2, stepSize: stepSize, c2: c2, eps: e)
                                }
                            }
                        } }
                    } }
                }
                m[name] = mi
                v[name] = vi
            }
        }
    }

    /// One element's AdamW update (decoupled weight decay, then the moments, then the bias-corrected step) — the
    /// one formula of `step` and `proposedValues`.
    @inline(__always)
    static func update(_ w: inout Float, m: inout Float, v: inout Float, gradient g: Float, decay: Float, beta1: Float,
                       beta2: Float, stepSize: Float, c2: Float, eps: Float) {
        w *= decay
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        w -= stepSize * m / (v.squareRoot() / c2 + eps)
    }

    /// The values the next `step` would give the parameters of `groups[group]` if their gradients were
    /// `gradients` (by parameter name, each as long as its parameter; a parameter without one is left out),
    /// bit for bit, without changing the parameters, the moments or the step count. Used by the tracking
    /// controller to find the multiplier whose step lands the expected sparsity on the target.
    public func proposedValues(group: Int, gradients: [String: [Float]],
                               scheduleMultiplier: Float = 1) -> [String: [Float]] {
        let t = Float(stepCount + 1)
        let c1 = 1 - pow(beta1, t), c2 = (1 - pow(beta2, t)).squareRoot()
        let g = groups[group]
        let lr = g.learningRate * (g.followsSchedule ? scheduleMultiplier : 1)
        let decay = 1 - lr * g.weightDecay
        let stepSize = lr / c1
        var out: [String: [Float]] = [:]
        for (name, p) in g.parameters {
            guard let grad = gradients[name] else { continue }
            precondition(grad.count == p.value.count, "proposedValues: '\(name)' has \(p.value.count) values, got \(grad.count) gradients")
            var w = p.value.scalars
            let mi = m[name], vi = v[name]
            for i in w.indices {
                var mm = mi?[i] ?? 0, vv = vi?[i] ?? 0
                Self.update(&w[i], m: &mm, v: &vv, gradient: grad[i], decay: decay, beta1: beta1, beta2: beta2,
                            stepSize: stepSize, c2: c2, eps: eps)
            }
            out[name] = w
        }
        return out
    }

    /// Clears every parameter's gradient.
    public func zeroGradients() {
        for g in groups { for (_, p) in g.parameters { p.grad = nil } }
    }

    /// The moments and step count, for checkpoints: `m.<name>`, `v.<name>` and `step` (a one-element tensor).
    public var state: [String: Tensor] {
        var s: [String: Tensor] = ["step": Tensor(shape: [1], scalars: [Float(stepCount)])]
        for g in groups {
            for (name, p) in g.parameters {
                if let mi = m[name] { s["m." + name] = Tensor(shape: p.shape, scalars: mi) }
                if let vi = v[name] { s["v." + name] = Tensor(shape: p.shape, scalars: vi) }
            }
        }
        return s
    }

    /// Restores `state`; every moment must match its parameter's shape.
    public func load(state s: [String: Tensor]) throws {
        guard let step = s["step"], step.count == 1 else { throw OptimizerStateError("missing 'step'") }
        var newM: [String: [Float]] = [:], newV: [String: [Float]] = [:]
        for g in groups {
            for (name, p) in g.parameters {
                for (prefix, table) in [("m.", 0), ("v.", 1)] {
                    guard let t = s[prefix + name] else { continue }
                    guard t.shape == p.shape else {
                        throw OptimizerStateError("'\(prefix)\(name)' has shape \(t.shape), the parameter has \(p.shape)")
                    }
                    if table == 0 { newM[name] = t.scalars } else { newV[name] = t.scalars }
                }
            }
        }
        stepCount = Int(step.scalars[0])
        m = newM
        v = newV
    }
}

/// An optimiser state that does not fit the model.
public struct OptimizerStateError: Error, CustomStringConvertible {
    public let description: String
    init(_ message: String) { description = "optimizer state: " + message }
}

/// Scales all gradients so their global L2 norm is at most `maxNorm` (`torch.nn.utils.clip_grad_norm_`:
/// factor maxNorm / (norm + 1e-6), applied only when below 1). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Variable], maxNorm: Float) -> Float {
    var total = 0.0
    for p in parameters { if let g = p.grad { for x in g.scalars { total += Double(x) * Double(x) } } }
    let norm = Float(total.squareRoot())
    let factor = maxNorm / (norm + 1e-6)
    if factor < 1 {
        for p in parameters {
            guard var g = p.grad else { continue }
            p.grad = nil  // drop the second reference so the scaling below writes in place
            let n = g.count
            g.withMutablePointer { gp in for i in 0..<n { gp[i] *= factor } }
            p.grad = g
        }
    }
    return norm
}

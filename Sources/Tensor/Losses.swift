import Foundation

/// Training losses, each returning a scalar `Variable`.

/// Mean cross-entropy of `logits` [N, C] against class `labels` [N]. Rows whose label is `ignoreIndex` (or
/// outside 0..<C when `ignoreIndex` is given) are left out of the mean, as PyTorch's `ignore_index`; with no
/// rows left the loss is 0.
public func crossEntropy(_ logits: Variable, labels: [Int], ignoreIndex: Int? = nil) -> Variable {
    let lv = logits.value
    let C = lv.shape.last ?? 1, N = lv.count / max(C, 1)
    precondition(labels.count == N, "crossEntropy: \(labels.count) labels for \(N) rows")
    var probs = [Float](repeating: 0, count: N * C)
    var total = 0.0, counted = 0
    lv.withPointer { lp in probs.withUnsafeMutableBufferPointer { pb in
        for n in 0..<N {
            let y = labels[n]
            if let ig = ignoreIndex, y == ig { continue }
            precondition(y >= 0 && y < C, "crossEntropy: label \(y) outside 0..<\(C)")
            Kernels.softmaxRow(lp + n * C, pb.baseAddress! + n * C, C)
            var mx = -Float.infinity
            for c in 0..<C { mx = max(mx, lp[n * C + c]) }
            var s = 0.0
            for c in 0..<C { s += Foundation.exp(Double(lp[n * C + c] - mx)) }
            total += Foundation.log(s) + Double(mx) - Double(lp[n * C + y])
            counted += 1
        }
    } }
    let denom = Float(max(counted, 1))
    return Variable(Tensor(scalar: counted == 0 ? 0 : Float(total / Double(counted))), inputs: [logits]) { g in
        let s = g.scalar / denom
        logits.accumulate(Tensor(shape: lv.shape) { d in
            for n in 0..<N {
                let y = labels[n]
                let ignored = ignoreIndex.map { y == $0 } ?? false
                for c in 0..<C { d[n * C + c] = ignored ? 0 : s * (probs[n * C + c] - (c == y ? 1 : 0)) }
            }
        })
    }
}

/// Mean squared error between `prediction` and a constant `target` of the same element count.
public func meanSquaredError(_ prediction: Variable, target: Tensor) -> Variable {
    let pv = prediction.value
    precondition(pv.count == target.count, "meanSquaredError: \(pv.count) predictions for \(target.count) targets")
    let n = Float(max(pv.count, 1))
    var s = 0.0
    for i in 0..<pv.count { let d = Double(pv.scalars[i] - target.scalars[i]); s += d * d }
    return Variable(Tensor(scalar: Float(s / Double(n))), inputs: [prediction]) { g in
        let k = 2 * g.scalar / n
        prediction.accumulate(Tensor(shape: pv.shape) { d in
            for i in 0..<d.count { d[i] = k * (pv.scalars[i] - target.scalars[i]) }
        })
    }
}

/// Mean squared error between two variables (both receive gradients), e.g. student vs teacher hidden states.
public func meanSquaredError(_ a: Variable, _ b: Variable) -> Variable {
    (a - b).squared().mean()
}

/// Knowledge-distillation loss T² · KL(p_t ‖ p_s) with p = softmax(logits / T) over the last dimension,
/// summed over classes and averaged over rows (PyTorch `kl_div(..., reduction="batchmean") · T²`).
/// The teacher is a constant; the gradient w.r.t. the student logits is T · (p_s − p_t) / rows.
public func distillationKL(student: Variable, teacher: Tensor, temperature T: Float) -> Variable {
    let sv = student.value
    precondition(sv.shape == teacher.shape, "distillationKL: student \(sv.shape) vs teacher \(teacher.shape)")
    let C = sv.shape.last ?? 1, N = sv.count / max(C, 1)
    var ps = [Float](repeating: 0, count: N * C), pt = [Float](repeating: 0, count: N * C)
    var total = 0.0
    for n in 0..<N {
        let ls = logSoftmax(sv.scalars[(n * C)..<(n * C + C)].map { Double($0 / T) })
        let lt = logSoftmax(teacher.scalars[(n * C)..<(n * C + C)].map { Double($0 / T) })
        for c in 0..<C {
            let p = Foundation.exp(lt[c])
            total += p * (lt[c] - ls[c])
            ps[n * C + c] = Float(Foundation.exp(ls[c]))
            pt[n * C + c] = Float(p)
        }
    }
    let rows = Float(max(N, 1))
    return Variable(Tensor(scalar: Float(total) * T * T / rows), inputs: [student]) { g in
        let k = g.scalar * T / rows
        student.accumulate(Tensor(shape: sv.shape) { d in
            for i in 0..<d.count { d[i] = k * (ps[i] - pt[i]) }
        })
    }
}

/// log-softmax of one row, in Double.
func logSoftmax(_ x: [Double]) -> [Double] {
    let m = x.max() ?? 0
    let lse = Foundation.log(x.reduce(0) { $0 + Foundation.exp($1 - m) }) + m
    return x.map { $0 - lse }
}

/// The causal language-model loss: the mean cross-entropy of predicting each token from the positions before it.
/// `logits` [B·T, V] (row b·T + t scores the token after position t), `tokens` [B·T] the input ids, `counted`
/// [B·T] (nil: all) whether a token is a target (false for padding). Row b·T + t is scored against token t + 1 of
/// the same sequence when that token is counted; the last position of each sequence predicts nothing. This is
/// Hugging Face's `ForCausalLMLoss` with labels = the ids and −100 at padding.
public func languageModelLoss(_ logits: Variable, tokens: [Int], counted: [Bool]?, batch B: Int, seqLen T: Int) -> Variable {
    precondition(tokens.count == B * T && (counted?.count ?? B * T) == B * T,
                 "languageModelLoss: \(tokens.count) tokens for B·T = \(B * T)")
    let ignored = -1
    let labels = (0..<(B * T)).map { i in
        let t = i % T
        guard t + 1 < T, counted?[i + 1] ?? true else { return ignored }
        return tokens[i + 1]
    }
    return crossEntropy(logits, labels: labels, ignoreIndex: ignored)
}

import Foundation
import Tensor

/// Choosing the next token from a row of logits: small pure functions, the randomness drawn from a caller's
/// seeded `Xoshiro256` so a seed fixes a generation.
public enum Sampling {
    /// The index of the largest logit (the first on ties; NaN never wins). Precondition: some logit is not NaN.
    public static func greedy(_ logits: [Float]) -> Int {
        var best = -1
        for (i, v) in logits.enumerated() where !v.isNaN && (best < 0 || v > logits[best]) { best = i }
        precondition(best >= 0, "Sampling.greedy: no logit is a number")
        return best
    }

    /// The tokens nucleus sampling may draw and their probabilities, most probable first: softmax(logits /
    /// temperature) (in Double), cut to the smallest prefix whose probabilities sum to at least `topP` (at least
    /// one token), unnormalised. NaN logits are never kept.
    public static func nucleus(_ logits: [Float], temperature: Double, topP: Double) -> [(token: Int, p: Double)] {
        precondition(temperature > 0, "Sampling.nucleus: temperature \(temperature) must be positive")
        let finite = logits.indices.filter { !logits[$0].isNaN }
        precondition(!finite.isEmpty, "Sampling.nucleus: no logit is a number")
        let mx = finite.map { Double(logits[$0]) }.max()!
        var probs = finite.map { (token: $0, p: Foundation.exp((Double(logits[$0]) - mx) / temperature)) }
        let total = probs.reduce(0) { $0 + $1.p }
        probs = probs.map { ($0.token, $0.p / total) }
        probs.sort { $0.p > $1.p || ($0.p == $1.p && $0.token < $1.token) }
        var kept = 0, mass = 0.0
        while kept < probs.count && (kept == 0 || mass < topP) {
            mass += probs[kept].p
            kept += 1
        }
        return Array(probs.prefix(kept))
    }

    /// Draws a token: greedy at temperature 0, otherwise from `nucleus(logits, temperature:, topP:)`
    /// renormalised, with one uniform draw from `rng`.
    public static func sample(_ logits: [Float], temperature: Double, topP: Double = 1,
                              rng: inout Xoshiro256) -> Int {
        if temperature == 0 { return greedy(logits) }
        let kept = nucleus(logits, temperature: temperature, topP: topP)
        let mass = kept.reduce(0) { $0 + $1.p }
        let u = Double(rng.next() >> 11) / Double(1 << 53) * mass
        var acc = 0.0
        for (token, p) in kept {
            acc += p
            if u < acc { return token }
        }
        return kept.last!.token
    }
}

extension LlamaDecoder {
    /// Generates up to `maxNewTokens` tokens after `prompt` (appended to the current context), choosing each with
    /// `choose` (e.g. `Sampling.greedy`), and stopping after an end-of-sequence token of the config. Returns the new
    /// tokens.
    public func generate(prompt: [Int], maxNewTokens: Int, choose: ([Float]) -> Int) -> [Int] {
        var out: [Int] = []
        var logits = prefill(prompt)
        let eos = Set(model.config.eosTokenIds)
        while out.count < maxNewTokens {
            let next = choose(logits)
            out.append(next)
            if eos.contains(next) || out.count == maxNewTokens || length == maxContext { break }
            logits = decode(next)
        }
        return out
    }
}

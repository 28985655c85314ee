import Tensor

/// Sentence-embedding pooling (sentence-transformers style): the mean of the token vectors under the
/// attention mask, then L2 normalisation. Inference only (no gradient).
public func meanPooledEmbeddings(_ hidden: Tensor, batch: BertBatch) -> Tensor {
    let B = batch.batch, T = batch.seqLen
    let D = hidden.count / max(B * T, 1)
    precondition(hidden.count == B * T * D, "hidden states do not match the batch")
    return Tensor(shape: [B, D]) { out in
        for b in 0..<B {
            var sum = [Double](repeating: 0, count: D)
            var n = 0.0
            for t in 0..<T where batch.attentionMask[b * T + t] != 0 {
                n += 1
                for j in 0..<D { sum[j] += Double(hidden.scalars[(b * T + t) * D + j]) }
            }
            let mean = sum.map { $0 / max(n, 1e-9) }
            let norm = max(mean.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            for j in 0..<D { out[b * D + j] = Float(mean[j] / norm) }
        }
    }
}

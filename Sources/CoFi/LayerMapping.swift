import BERT
import Foundation
import Tensor

/// How layer distillation pairs each distilled teacher layer with a student layer (cofi-spec §5). The pairing is
/// recomputed every step from the matrix ℓ[i, j] = MSE(W_layer·H_s^j, H_t^i).
public enum LayerMappingVersion: String, Codable, Sendable, CaseIterable {
    /// m(i) = argmin_j ℓ[i, j] over all student layers: no ordering, no check for pruned layers.
    case v3
    /// Top-down over the teacher layers; each picks the existing student layer of smallest ℓ strictly below the
    /// previous pick, and reuses the previous pick when none is left. The paper's default and the project's.
    case v4
}

/// The pieces of the dynamic layer mapping, as pure functions of plain numbers so they can be tested on
/// hand-built loss matrices.
///
/// Layer numbers are 1-based, as in the paper: teacher layer i is `hiddenStates[i]` of the teacher (index 0 holds
/// the embeddings), student layer j is `hiddenStates[j]` of the student. The embeddings are never distilled.
public enum LayerMapping {
    /// The default distilled teacher layers: the 4 evenly spaced layers ⌈k·L/4⌉, k = 1…4, with repeats removed.
    ///
    /// 12 → [3, 6, 9, 12] (TinyBERT's and the reference's [2, 5, 8, 11] 0-based); 6 → [2, 3, 5, 6];
    /// 4 → [1, 2, 3, 4]. Shallower teachers would repeat layers (3 → 1, 2, 3, 3); a repeated layer would count twice
    /// in L_layer and, under v4, would have to map strictly below its own twin, so repeats are dropped:
    /// 3 → [1, 2, 3], 2 → [1, 2], 1 → [1], 0 → [].
    public static func defaultTeacherLayers(teacherLayerCount L: Int) -> [Int] {
        precondition(L >= 0, "a teacher cannot have \(L) layers")
        var layers: [Int] = []
        for k in 1...4 {
            let layer = (k * L + 3) / 4  // ⌈k·L/4⌉ in integers
            if layer >= 1, layers.last != layer { layers.append(layer) }
        }
        return layers
    }

    /// Which student layers "exist" in the current mask sample, for v4: layer j (1-based, entry j − 1) exists iff
    /// its MHA gate z_MHA ≠ 0 **or** its FFN gate z_FFN ≠ 0 — the fixed test of cofi-spec §10 P6 (the reference
    /// code looks at z_MHA only). A missing gate (nil family or nil layer entry) counts as non-zero: that sublayer is
    /// not gated. Returns nil without masks: every layer is a candidate (pre-pruning and fine-tuning stages).
    ///
    /// As in the reference, only the two layer gates are read. A layer whose layer gates are non-zero but whose
    /// heads and FFN units are all 0 counts as existing; its output then equals its input, so mapping to it costs
    /// what mapping to the layer below would.
    public static func existingLayers(masks: MaskSet?, layerCount: Int) -> [Bool]? {
        guard let masks else { return nil }
        precondition(masks.attentionLayers.count == layerCount && masks.ffnLayers.count == layerCount,
                     "mask set has \(masks.attentionLayers.count) layers, the student \(layerCount)")
        func on(_ z: Variable?) -> Bool { z.map { $0.value.scalars.contains { $0 != 0 } } ?? true }
        return (0..<layerCount).map { on(masks.attentionLayers[$0]) || on(masks.ffnLayers[$0]) }
    }

    /// The mapping m: for each teacher layer (row i of `losses`, in ascending teacher order) the chosen 1-based
    /// student layer. `losses[i][j − 1]` = ℓ[i, j] for student layers j = 1…L_s; `exists` (L_s entries, or nil for
    /// all) is used by v4 only. Ties go to the smaller student layer (`torch.argmin` takes the first minimum;
    /// the reference's v4 `sort` leaves ties unspecified).
    ///
    /// v4 walks the teacher layers top-down with the bound b = L_s + 1: the candidates are the existing student
    /// layers j < b; the one with the smallest ℓ is chosen and becomes the new bound; with no candidate the previous
    /// choice is reused. When the **top** teacher layer has no candidate (no student layer exists: every MHA and FFN
    /// gate of the sample is 0) the reference would index student layer L_s + 1, out of range; here it maps to the
    /// last student layer L_s instead — with every layer gated off each student layer outputs the embeddings, so
    /// every choice costs the same — and the lower teacher layers reuse it.
    public static func select(losses: [[Double]], version: LayerMappingVersion, exists: [Bool]? = nil) -> [Int] {
        guard let studentLayers = losses.first?.count else { return [] }
        precondition(studentLayers > 0, "layer mapping needs at least one student layer")
        precondition(losses.allSatisfy { $0.count == studentLayers }, "ragged layer-loss matrix")
        precondition(exists.map { $0.count == studentLayers } ?? true,
                     "existence flags for \(exists!.count) layers, losses for \(studentLayers)")
        switch version {
        case .v3:
            return losses.map { row in argmin(row, among: 1...studentLayers)! }
        case .v4:
            var mapping = [Int](repeating: 0, count: losses.count)
            var bound = studentLayers + 1
            for i in losses.indices.reversed() {
                let candidates = (1..<bound).filter { exists?[$0 - 1] ?? true }
                let chosen = argmin(losses[i], among: candidates) ?? min(bound, studentLayers)
                mapping[i] = chosen
                bound = chosen
            }
            return mapping
        }
    }

    /// The 1-based layer j among `candidates` with the smallest `row[j − 1]` (first one on ties); nil if none.
    static func argmin<C: Sequence>(_ row: [Double], among candidates: C) -> Int? where C.Element == Int {
        var best: Int?
        for j in candidates where best == nil || row[j - 1] < row[best! - 1] { best = j }
        return best
    }
}

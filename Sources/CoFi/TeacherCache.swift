import BERT
import Foundation
import Tensor

/// The teacher's outputs of the fine-tuning steps of a ladder, kept for the next rung: every rung's compact model is
/// fine-tuned with the same settings on the same batches (same seed, batch size and epochs), and the frozen teacher
/// runs in inference mode (no dropout), so its outputs for step k are the same for every rung. The first rung's
/// fine-tuning computes them; the others read them back, and the results are bit for bit those of recomputing
/// (checked by `LadderTests`). An entry is used only for the same step, the same examples (`TrainingBatch.indices`)
/// and the same packing; entries are kept while they fit in `byteBudget`, later steps are computed as before.
public final class TeacherOutputCache {
    public let byteBudget: Int
    private struct Entry {
        let indices: [Int]
        let packs: Bool
        let output: BertOutput
    }
    private var entries: [Int: Entry] = [:]
    public private(set) var bytes = 0
    public private(set) var hits = 0
    public private(set) var misses = 0

    /// A quarter of the machine's memory, at most 4 GiB.
    public static var defaultBudget: Int { Int(min(ProcessInfo.processInfo.physicalMemory / 4, 4 << 30)) }

    public init(byteBudget: Int = TeacherOutputCache.defaultBudget) { self.byteBudget = byteBudget }

    /// The teacher's output for `step` on the examples `indices`, from the cache or from `compute` (then kept when
    /// it fits).
    public func output(step: Int, indices: [Int], packs: Bool, compute: () -> BertOutput) -> BertOutput {
        if let e = entries[step], e.indices == indices, e.packs == packs {
            hits += 1
            return e.output
        }
        misses += 1
        let out = compute()
        let size = Self.bytes(of: out)
        if entries[step] == nil, bytes + size <= byteBudget {
            entries[step] = Entry(indices: indices, packs: packs, output: out)
            bytes += size
        }
        return out
    }

    static func bytes(of o: BertOutput) -> Int {
        let tensors = o.hiddenStates + [o.pooled, o.logits, o.startLogits, o.endLogits].compactMap { $0 }
        return tensors.reduce(0) { $0 + 4 * $1.value.count }
    }
}

import Foundation
import Llama
import Tensor

/// `cofi shear`'s checkpoint, `OUT/checkpoint/`: the model being trained (config.json + model.safetensors — the
/// source model with its gates while pruning, the compact model after the cut), the optimiser's moments
/// (`optimizer.safetensors`), the gates' log α and λ while pruning (`gates.safetensors`), and `state.json` (stage,
/// steps done, the data sampler with its weights and shuffled orders, the report so far, the settings). Written
/// whole into `OUT/.checkpoint-new`, then swapped in by renames (the previous one kept as `.checkpoint-old` until
/// the new one is in place), so a kill at any moment leaves a complete checkpoint. Every random draw of a step
/// (mask noise, data picks) comes from a generator seeded by (seed, stage, step), so a resumed run draws exactly
/// what the uninterrupted one would.
public struct ShearCheckpoint {
    public struct State: Codable, Sendable {
        /// "prune" or "train".
        public var stage: String
        /// Steps of `stage` done.
        public var step: Int
        public var sampler: DomainSampler
        public var report: ShearReport
    }

    public let directory: URL
    public let state: State

    static func directories(_ out: URL) -> (current: URL, new: URL, old: URL) {
        (out.appendingPathComponent("checkpoint"), out.appendingPathComponent(".checkpoint-new"),
         out.appendingPathComponent(".checkpoint-old"))
    }

    /// Writes a checkpoint of `model` (+ `gates`) and `optimizer` at `state`.
    static func save(_ out: URL, state: State, model: LlamaModel, optimizer: [String: Tensor]?, gates: ShearGates?) throws {
        let d = directories(out)
        let fm = FileManager.default
        try? fm.removeItem(at: d.new)
        do {
            try model.save(to: d.new)
            if let optimizer { try SafetensorsWriter.write(optimizer, to: d.new.appendingPathComponent("optimizer.safetensors")) }
            if let gates {
                let tensors = Dictionary(uniqueKeysWithValues: (gates.logAlphas + gates.lambdas).map { ($0.0, $0.1.value) })
                try SafetensorsWriter.write(tensors, to: d.new.appendingPathComponent("gates.safetensors"))
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(state).write(to: d.new.appendingPathComponent("state.json"), options: .atomic)
            try? fm.removeItem(at: d.old)
            if fm.fileExists(atPath: d.current.path) { try fm.moveItem(at: d.current, to: d.old) }
            try fm.moveItem(at: d.new, to: d.current)
            try? fm.removeItem(at: d.old)
        } catch {
            throw ShearError("\(out.path): cannot write the checkpoint (\(error))")
        }
    }

    /// The checkpoint of a run in `out` (the current one, or the previous one if a kill fell between the renames),
    /// refused when it was made with other settings than `settings`.
    static func load(_ out: URL, settings: ShearSettings) throws -> ShearCheckpoint {
        let d = directories(out)
        let fm = FileManager.default
        let dir = fm.fileExists(atPath: d.current.appendingPathComponent("state.json").path) ? d.current : d.old
        let url = dir.appendingPathComponent("state.json")
        guard let data = try? Data(contentsOf: url) else {
            throw ShearError("--resume: \(out.path) holds no checkpoint to resume (no checkpoint/state.json)")
        }
        let state: State
        do { state = try JSONDecoder().decode(State.self, from: data) } catch {
            throw ShearError("--resume: \(url.path) is not a checkpoint state (\(error))")
        }
        let a = state.report.settings, b = settings
        for (name, same) in [("--model", a.model == b.model), ("--target-shape", a.target == b.target), ("--text", a.texts == b.texts),
                             ("--init", a.initialization == b.initialization), ("--seq-len", a.seqLen == b.seqLen),
                             ("--batch", a.batch == b.batch), ("--prune-steps", a.pruneSteps == b.pruneSteps),
                             ("--train-steps", a.trainSteps == b.trainSteps), ("--seed", a.seed == b.seed),
                             ("--same-tokens-as", a.sameTokensAs == b.sameTokensAs)] where !same {
            throw ShearError("--resume: \(name) differs from the run in \(out.path); a resumed run must repeat the run's arguments")
        }
        return ShearCheckpoint(directory: dir, state: state)
    }

    /// The optimiser state saved beside the model, if any.
    func optimizer() throws -> [String: Tensor]? {
        let url = directory.appendingPathComponent("optimizer.safetensors")
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let file = try SafetensorsFile(contentsOf: url)
        return try Dictionary(uniqueKeysWithValues: file.names.map { ($0, try file.tensor($0)) })
    }

    /// Restores the gates' log α and λ.
    func restore(_ gates: ShearGates) throws {
        let url = directory.appendingPathComponent("gates.safetensors")
        let file = try SafetensorsFile(contentsOf: url)
        for (name, v) in gates.logAlphas + gates.lambdas {
            let t = try file.tensor(name)
            guard t.count == v.value.count else { throw ShearError("\(url.path): '\(name)' has \(t.count) values, expected \(v.value.count)") }
            v.assign(t.reshaped(v.value.shape))
        }
    }
}

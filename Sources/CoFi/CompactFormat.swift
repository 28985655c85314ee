import BERT
import Foundation
import Tensor

/// The compact checkpoint: `model.safetensors` (the cut tensors under their Hugging Face names) and `config.json`
/// with the dense config plus the `cofi` block, the `CompactLayout` (`BERT/CompactLayout.swift`, where the format
/// and its validation live, so that every load of a model checks it). Writing it is CoFi's: `CompactModel.save`.

extension CompactModel {
    /// Writes `directory/model.safetensors` (every parameter under its Hugging Face name) and
    /// `directory/config.json` (the dense config — `config`, else the model's own — with `layout` as its `cofi`
    /// block and the label fields describing the head, `BertConfig.describingHead`; keys sorted, 2-space indent),
    /// each atomically, tensors first. The block is validated against the model's shape before anything is written.
    public func save(to directory: URL, config: BertConfig? = nil) throws {
        var config = (config ?? model.config).describingHead(model.task)
        config.compact = layout
        let url = directory.appendingPathComponent("config.json")
        try config.validate(file: url.path)
        if let layout { try layout.validate(shape: model.shape, config: config, file: url.path) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var tensors: [String: Tensor] = [:]
        for (name, p) in model.namedParameters { tensors[name] = p.value }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: directory.appendingPathComponent("model.safetensors"))
        try config.write(to: url)
    }

    /// Loads a compact (or any) checkpoint through `BertModel.load(directory:task:seed:options:)`, which checks the
    /// tensors against the config and its `cofi` block; the layout is the block (nil for a dense model).
    public static func load(directory: URL, task: TaskHeadKind? = nil, seed: UInt64 = 57,
                            options: ModelLoadOptions = ModelLoadOptions()) throws -> CompactModel {
        let model = try BertModel.load(directory: directory, task: task, seed: seed, options: options)
        return CompactModel(model: model, layout: model.config.compact)
    }
}

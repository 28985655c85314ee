import BERT
import Foundation
import Tensor

/// Compaction (cofi-spec §7 with project decision 5): fold the deterministic soft mask values into the weights,
/// then cut every head, FFN unit, hidden dim and sublayer whose mask is zero. The result is a physically smaller
/// `BertModel` whose outputs equal the masked model's (`model(batch, masks: masks, …)`) up to float rounding.
///
/// Fold (exact, because each mask multiplies a linear function of the weights it is folded into):
/// * z_head[h] scales head h's context ctx_h = softmax(·)·V_h, which is linear in V: rows h·Dh ..< (h+1)·Dh of
///   W_V [H·Dh, D] and of b_V are scaled.
/// * z_MHA scales a = W_O·ctx + b_O: W_O [D, H·Dh] and b_O are scaled.
/// * z_int[i] scales unit i after the GELU: column i of W_D [D, I] is scaled.
/// * z_FFN scales f = W_D·u + b_D: W_D and b_D are scaled.
///
/// Cut:
/// * heads with z_head = 0 (Q/K/V output rows, W_O input columns); all heads of a layer, or z_MHA = 0: the
///   attention sublayer is absent (the identity, as `MaskSet.attentionIsOff` makes it in the masked model);
/// * FFN units with z_int = 0 (W_U output rows and b_U, W_D input columns); all units, or z_FFN = 0: no FFN;
/// * hidden dims with z_hidn = 0, which must be binary: embedding tables' columns, every LayerNorm, Q/K/V/W_U
///   input columns, W_O/W_D output rows and their biases, pooler and span-head input columns. The masked model
///   keeps those dims at exactly 0 in the whole residual stream and leaves them out of the LayerNorm statistics,
///   so cutting them is exact. The pooler keeps its output width, so a sequence head is unchanged.
/// Head width, and so the attention scale 1/√Dh, are unchanged.

/// A mask set that cannot be compacted exactly, or one that does not fit the model; names the mask.
public struct CompactionError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A compact model with the record of what it kept.
public struct CompactModel {
    /// The cut model: per-layer heads and FFN widths, and the hidden width, of what survived.
    public let model: BertModel
    /// What was kept, in the numbering of the original dense model (the model config's `cofi` block); nil for a
    /// dense model.
    public let layout: CompactLayout?

    public init(model: BertModel, layout: CompactLayout?) {
        self.model = model
        self.layout = layout
    }
}

extension BertModel {
    /// Folds the deterministic `masks` into the weights and cuts what they zero (see the notes above).
    ///
    /// `masks` holds plain values: soft values for heads, FFN units and the two layer gates; 0/1 for the hidden
    /// dims (decision 5; any other hidden value throws). An absent family or layer entry means "all ones".
    /// `base` is the layout of this model when it is itself compact (by default its config's `cofi` block), so
    /// that the new layout's indices stay in the original numbering; without one, this model's own numbering is
    /// taken as the original one. `source` is recorded in the layout as given. The cut model's config carries the
    /// new layout as its `cofi` block.
    public func compacted(masks: MaskSet?, base: CompactLayout? = nil,
                          source: CompactSource? = nil) throws -> CompactModel {
        let base = base ?? config.compact
        let z = try MaskValues(masks, model: self)
        if let base {
            do { try base.validate(shape: shape, config: config, file: "base layout") } catch {
                throw CompactionError("the base layout does not describe this model: \(error)")
            }
        }
        let D = shape.hiddenSize, dh = shape.headDim
        let keptHidden = z.hidden.map { h in h.indices.filter { h[$0] != 0 } } ?? Array(0..<D)
        guard !keptHidden.isEmpty else {
            throw CompactionError("mask 'hidden_z' zeroes every one of the \(D) hidden dims: nothing would be left")
        }

        // The cut tensors under the names of `CheckpointKeys`, which `assemble` reads back.
        var tensors: [String: Tensor] = [:]
        func put(_ name: String, _ t: Tensor) { tensors[name] = t }
        func putNorm(_ key: CheckpointKey, _ n: LayerNormWeights) {
            put(key.weight, n.weight.value.picking(keptHidden))
            put(key.bias, n.bias.value.picking(keptHidden))
        }

        // Embeddings [rows, D] → [rows, D'].
        put(CheckpointKeys.wordEmbeddings.weight, embeddings.wordEmbeddings.value.slicing(columns: keptHidden))
        put(CheckpointKeys.positionEmbeddings.weight, embeddings.positionEmbeddings.value.slicing(columns: keptHidden))
        put(CheckpointKeys.tokenTypeEmbeddings.weight, embeddings.tokenTypeEmbeddings.value.slicing(columns: keptHidden))
        putNorm(CheckpointKeys.embeddingNorm, embeddings.layerNorm)

        var layerShapes: [LayerShape] = []
        var keptHeadsPerLayer: [[Int]] = [], keptUnitsPerLayer: [[Int]] = []
        for (l, layer) in layers.enumerated() {
            let k = CheckpointKeys.layer(l)
            var keptHeads: [Int] = []
            if let att = layer.attention, !(masks?.attentionIsOff(layer: l) ?? false) {
                let zHead = z.heads[l] ?? Array(repeating: 1, count: att.heads)
                let zLayer = z.attentionLayers[l] ?? 1
                keptHeads = (0..<att.heads).filter { zHead[$0] != 0 }
                let rows = keptHeads.flatMap { h in (h * dh)..<((h + 1) * dh) }  // rows of [H·Dh, D]
                let rowScale = rows.map { zHead[$0 / dh] }
                put(k.query.weight, att.query.weight.value.slicing(rows: rows, columns: keptHidden))
                put(k.query.bias, att.query.bias.value.picking(rows))
                put(k.key.weight, att.key.weight.value.slicing(rows: rows, columns: keptHidden))
                put(k.key.bias, att.key.bias.value.picking(rows))
                put(k.value.weight, att.value.weight.value.slicing(rows: rows, columns: keptHidden, rowScale: rowScale))
                put(k.value.bias, att.value.bias.value.picking(rows, scale: rowScale))
                // W_O [D, H·Dh] → [D', H'·Dh], times z_MHA; b_O [D] → [D'], times z_MHA.
                put(k.attentionOutput.weight, att.output.weight.value.slicing(rows: keptHidden, columns: rows, factor: zLayer))
                put(k.attentionOutput.bias,
                    att.output.bias.value.picking(keptHidden, scale: Array(repeating: zLayer, count: keptHidden.count)))
                putNorm(k.attentionNorm, att.layerNorm)
            }
            var keptUnits: [Int] = []
            if let ffn = layer.feedForward, !(masks?.ffnIsOff(layer: l) ?? false) {
                let width = ffn.intermediate.outFeatures
                let zUnit = z.intermediate[l] ?? Array(repeating: 1, count: width)
                let zLayer = z.ffnLayers[l] ?? 1
                keptUnits = (0..<width).filter { zUnit[$0] != 0 }
                // W_U [I, D] → [I', D'], b_U [I] → [I'].
                put(k.intermediate.weight, ffn.intermediate.weight.value.slicing(rows: keptUnits, columns: keptHidden))
                put(k.intermediate.bias, ffn.intermediate.bias.value.picking(keptUnits))
                // W_D [D, I] → [D', I'], column i times z_int[i], all times z_FFN; b_D [D] → [D'] times z_FFN.
                put(k.output.weight,
                    ffn.output.weight.value.slicing(rows: keptHidden, columns: keptUnits,
                                                    columnScale: keptUnits.map { zUnit[$0] }, factor: zLayer))
                put(k.output.bias,
                    ffn.output.bias.value.picking(keptHidden, scale: Array(repeating: zLayer, count: keptHidden.count)))
                putNorm(k.outputNorm, ffn.layerNorm)
            }
            layerShapes.append(LayerShape(heads: keptHeads.count, ffnWidth: keptUnits.count))
            keptHeadsPerLayer.append(keptHeads)
            keptUnitsPerLayer.append(keptUnits)
        }

        // The pooler reads [CLS] of the residual stream (input columns cut) and keeps its output width.
        if let pooler {
            put(CheckpointKeys.pooler.weight, pooler.weight.value.slicing(columns: keptHidden))
            put(CheckpointKeys.pooler.bias, pooler.bias.value)
        }
        if let task, let head {
            // A span head reads the residual stream; a sequence head reads the pooler, whose width is unchanged.
            let key = CheckpointKeys.head(task)
            put(key.weight, task.usesPooler ? head.weight.value : head.weight.value.slicing(columns: keptHidden))
            put(key.bias, head.bias.value)
        }

        let newShape = BertShape(vocabSize: shape.vocabSize, hiddenSize: keptHidden.count, headDim: dh,
                                 maxPositions: shape.maxPositions, typeVocabSize: shape.typeVocabSize,
                                 layers: layerShapes, poolerWidth: pooler == nil ? nil : shape.poolerWidth)
        // Indices in the original numbering: through `base` when this model was itself cut.
        func original(_ local: [Int], _ map: [Int]?) -> [Int] { map.map { m in local.map { m[$0] } } ?? local }
        let layout = CompactLayout(
            config: config, shape: newShape,
            keptHidden: original(keptHidden, base?.keptHidden),
            keptHeads: keptHeadsPerLayer.enumerated().map { original($1, base?.layers[$0].keptHeads) },
            keptFFNUnits: keptUnitsPerLayer.enumerated().map { original($1, base?.layers[$0].keptFFNUnits) },
            source: source ?? base?.source)
        var compactConfig = config
        compactConfig.compact = layout
        let compact: BertModel
        do {
            compact = try BertModel.assemble(config: compactConfig, shape: newShape, task: task, tensors: tensors)
        } catch {
            throw CompactionError("cannot assemble the compact model: \(error)")
        }
        return CompactModel(model: compact, layout: layout)
    }
}

/// The plain values of a mask set, checked against the model (sizes, finite values, binary hidden dims).
struct MaskValues {
    var hidden: [Float]?
    var heads: [[Float]?]
    var attentionLayers: [Float?]
    var intermediate: [[Float]?]
    var ffnLayers: [Float?]

    init(_ masks: MaskSet?, model: BertModel) throws {
        let L = model.layers.count
        heads = Array(repeating: nil, count: L)
        attentionLayers = Array(repeating: nil, count: L)
        intermediate = Array(repeating: nil, count: L)
        ffnLayers = Array(repeating: nil, count: L)
        guard let masks else { return }
        for (family, count) in [("heads", masks.heads.count), ("attentionLayers", masks.attentionLayers.count),
                                ("intermediate", masks.intermediate.count), ("ffnLayers", masks.ffnLayers.count)]
            where count != L {
            throw CompactionError("mask set: '\(family)' has entries for \(count) layers, the model has \(L)")
        }
        func values(_ z: Variable?, _ name: String, count: Int, what: String) throws -> [Float]? {
            guard let z else { return nil }
            let v = z.value.scalars
            guard v.count == count else {
                throw CompactionError("mask '\(name)' has \(v.count) values, expected \(count) (\(what))")
            }
            if let i = v.firstIndex(where: { !$0.isFinite }) {
                throw CompactionError("mask '\(name)' value \(i) is \(v[i]): mask values must be finite")
            }
            return v
        }
        hidden = try values(masks.hidden, "hidden_z", count: model.shape.hiddenSize, what: "the model's hidden width")
        if let h = hidden, let i = h.firstIndex(where: { $0 != 0 && $0 != 1 }) {
            throw CompactionError("mask 'hidden_z' dim \(i) is \(h[i]): the hidden mask must be binary (0 or 1) to "
                + "compact exactly, since a soft scale around a LayerNorm cannot be folded (cofi-spec decision 5)")
        }
        for l in 0..<L {
            // A sublayer the model lacks ignores its masks, as the masked forward pass does.
            if let att = model.layers[l].attention {
                heads[l] = try values(masks.heads[l], "layer.\(l).head_z", count: att.heads, what: "the layer's heads")
                attentionLayers[l] = try values(masks.attentionLayers[l], "layer.\(l).head_layer_z", count: 1,
                                                what: "one layer gate")?[0]
            }
            if let ffn = model.layers[l].feedForward {
                intermediate[l] = try values(masks.intermediate[l], "layer.\(l).intermediate_z",
                                             count: ffn.intermediate.outFeatures, what: "the layer's FFN units")
                ffnLayers[l] = try values(masks.ffnLayers[l], "layer.\(l).mlp_z", count: 1, what: "one layer gate")?[0]
            }
        }
    }
}

extension Tensor {
    /// Entries `indices` of a vector [N] → [indices.count], entry k times `scale[k]` when given.
    func picking(_ indices: [Int], scale: [Float]? = nil) -> Tensor {
        precondition(rank == 1, "picking: expected a vector, got shape \(shape)")
        return Tensor(shape: [indices.count], scalars: indices.enumerated().map { k, i in
            scale.map { scalars[i] * $0[k] } ?? scalars[i]
        })
    }

    /// W[rows, columns] of a matrix [out, in] → [rows.count, columns.count] (nil: all), each kept row k times
    /// `rowScale[k]`, column k times `columnScale[k]`, and everything times `factor`, in that order.
    func slicing(rows: [Int]? = nil, columns: [Int]? = nil, rowScale: [Float]? = nil, columnScale: [Float]? = nil,
                 factor: Float = 1) -> Tensor {
        precondition(rank == 2, "slicing: expected a matrix, got shape \(shape)")
        let inF = shape[1]
        let r = rows ?? Array(0..<shape[0]), c = columns ?? Array(0..<inF)
        precondition(r.allSatisfy { (0..<shape[0]).contains($0) } && c.allSatisfy { (0..<inF).contains($0) },
                     "slicing: index out of range for shape \(shape)")
        let C = c.count
        let scaled = rowScale != nil || columnScale != nil || factor != 1
        return Tensor(shape: [r.count, C]) { out in
            scalars.withUnsafeBufferPointer { w in c.withUnsafeBufferPointer { cols in
                for (i, row) in r.enumerated() {
                    let src = w.baseAddress! + row * inF, dst = out.baseAddress! + i * C
                    for j in 0..<C { dst[j] = src[cols[j]] }
                    guard scaled else { continue }
                    if let rs = rowScale?[i] { for j in 0..<C { dst[j] *= rs } }
                    if let cs = columnScale { for j in 0..<C { dst[j] *= cs[j] } }
                    if factor != 1 { for j in 0..<C { dst[j] *= factor } }
                }
            } }
        }
    }
}

import Tensor

extension LlamaModel {
    /// The model with the structures that `masks` switches off cut away and the kept mask values folded into the
    /// weights, so that it computes what `forward(_:masks:)` computes with the same masks (up to float rounding):
    /// hidden dims with z_h = 0, layers with z = 0, KV groups (each with its G query heads) with z = 0, FFN units
    /// with z = 0 go; a layer's attention with no group left or FFN with no unit left becomes absent. Values fold
    /// in as follows: z_h into the embedding table's columns (which the tied output layer shares; an untied one gets
    /// them too), and into the rows of every sublayer's output projection, with the layer's z; a group's z into the
    /// columns of the output projection that read its heads; a unit's z into the down projection's column. The
    /// RMSNorm gains keep the kept dims (their means run over the kept width, as the masked model's do).
    ///
    /// The result's config: the kept layers, the kept hidden width, and for heads and FFN the widest kept layer
    /// (per-layer shapes are in the tensors); head width, vocabulary, rotary and the rest unchanged. Its
    /// parameters are fresh variables (requiring gradients, with their checkpoint names).
    public func compacted(masks: LlamaMasks) -> LlamaModel {
        precondition(masks.layers.count == layers.count, "compacted: masks for \(masks.layers.count) layers, model has \(layers.count)")
        let D = config.hiddenSize, Dh = config.headDim, G = config.groupSize
        let zh = masks.hidden?.value.scalars ?? [Float](repeating: 1, count: D)
        precondition(zh.count == D, "compacted: hidden mask of \(zh.count) values for width \(D)")
        let keptDims = (0..<D).filter { zh[$0] != 0 }
        let Dk = keptDims.count
        precondition(Dk > 0, "compacted: the hidden mask keeps no dimension")

        /// W[rows, cols] of a [R, C] tensor, each entry times rowScale[r]·colScale[c].
        func cut(_ w: Tensor, rows: [Int], cols: [Int], rowScale: [Float]? = nil, colScale: [Float]? = nil) -> Variable {
            let C = w.shape[1]
            let src = w.scalars
            var out = [Float](repeating: 0, count: rows.count * cols.count)
            for (i, r) in rows.enumerated() {
                let rs = rowScale?[r] ?? 1
                for (j, c) in cols.enumerated() { out[i * cols.count + j] = src[r * C + c] * rs * (colScale?[c] ?? 1) }
            }
            return Variable(Tensor(shape: [rows.count, cols.count], scalars: out), requiresGrad: true)
        }
        func gain(_ w: Tensor) -> Variable {
            let s = w.scalars
            return Variable(Tensor(shape: [Dk], scalars: keptDims.map { s[$0] }), requiresGrad: true)
        }

        var newLayers: [LlamaLayer] = []
        for (l, layer) in layers.enumerated() where !masks.layerIsOff(l) {
            let zl = masks.layers[l]?.value.scalars.first ?? 1
            let rowScale = zh.map { $0 * zl }
            var out = LlamaLayer()
            if let a = layer.attention {
                let groups = a.kvWidth / Dh
                let zg = masks.heads[l]?.value.scalars ?? [Float](repeating: 1, count: groups)
                precondition(zg.count == groups, "compacted: layer \(l) has \(groups) KV groups, its mask \(zg.count) values")
                let keptGroups = (0..<groups).filter { zg[$0] != 0 }
                if !keptGroups.isEmpty {
                    let kvRows = keptGroups.flatMap { g in (g * Dh)..<((g + 1) * Dh) }
                    let qRows = keptGroups.flatMap { g in (g * G * Dh)..<((g + 1) * G * Dh) }
                    // The output projection's columns: query head h's Dh columns carry its group's z.
                    let colScale = (0..<(groups * G * Dh)).map { zg[$0 / (G * Dh)] }
                    out.attention = LlamaAttention(
                        norm: gain(a.norm.value), q: cut(a.q.value, rows: qRows, cols: keptDims),
                        k: cut(a.k.value, rows: kvRows, cols: keptDims), v: cut(a.v.value, rows: kvRows, cols: keptDims),
                        o: cut(a.o.value, rows: keptDims, cols: qRows, rowScale: rowScale, colScale: colScale))
                }
            }
            if let f = layer.ffn {
                let units = f.gate.shape[0]
                let zi = masks.intermediate[l]?.value.scalars ?? [Float](repeating: 1, count: units)
                precondition(zi.count == units, "compacted: layer \(l) has \(units) FFN units, its mask \(zi.count) values")
                let keptUnits = (0..<units).filter { zi[$0] != 0 }
                if !keptUnits.isEmpty {
                    out.ffn = LlamaFFN(norm: gain(f.norm.value), gate: cut(f.gate.value, rows: keptUnits, cols: keptDims),
                                       up: cut(f.up.value, rows: keptUnits, cols: keptDims),
                                       down: cut(f.down.value, rows: keptDims, cols: keptUnits, rowScale: rowScale, colScale: zi))
                }
            }
            newLayers.append(out)
        }
        let vocabulary = Array(0..<config.vocabSize)
        let embed = cut(embedTokens.value, rows: vocabulary, cols: keptDims, colScale: zh)
        let head = lmHead.map { cut($0.value, rows: vocabulary, cols: keptDims, colScale: zh) }
        var c = config
        c.hiddenSize = Dk
        c.numHiddenLayers = newLayers.count
        let maxGroups = newLayers.map { ($0.attention?.kvWidth ?? 0) / Dh }.max() ?? 0
        // A model without any attention left still needs a valid head count (G per group); no layer uses it.
        c.numKeyValueHeads = max(1, maxGroups)
        c.numAttentionHeads = c.numKeyValueHeads * G
        c.intermediateSize = max(1, newLayers.map { $0.ffn?.gate.shape[0] ?? 0 }.max() ?? 0)
        let model = LlamaModel(config: c, embedTokens: embed, layers: newLayers, norm: gain(norm.value), lmHead: head)
        for (name, p) in model.namedParameters { p.name = name }
        return model
    }
}

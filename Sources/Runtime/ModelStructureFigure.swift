import BERT
import Charts
import Foundation

extension StructureFigure {
    /// The kept-structure figure of a model of `shape` cut from the dense `original` (one layer each, in order).
    public init(shape: BertShape, original: BertShape) {
        precondition(shape.layers.count == original.layers.count, "one original layer per layer")
        self.init(layers: zip(shape.layers, original.layers).map {
                      Layer(heads: $0.heads, originalHeads: $1.heads, ffnUnits: $0.ffnWidth, originalFFNUnits: $1.ffnWidth)
                  },
                  hiddenSize: shape.hiddenSize, originalHiddenSize: original.hiddenSize)
    }

    /// The figure of the model a model directory's `config.json` describes, without its tensors: a compact model's
    /// `cofi` block against the dense sizes its standard fields keep; a dense model is 100 % everywhere.
    public init(config: BertConfig) {
        self.init(shape: BertShape(describedBy: config), original: BertShape(config: config))
    }

    /// The figure of a loaded model: its own shape against the dense shape of its config.
    public init(model: BertModel) {
        self.init(shape: model.shape, original: BertShape(config: model.config))
    }
}

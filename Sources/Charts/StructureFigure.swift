import Foundation

/// The kept-structure figure of a (possibly pruned) BERT encoder: one group of bars per layer, the attention heads
/// and the FFN units kept as a percentage of the original layer's, each bar labelled "kept/original" (a removed
/// sublayer reads 0), and the hidden width in the title. The same picture in `cofi prune`'s report
/// (`figures/architecture.svg`) and wherever else a model's shape is shown; it takes plain counts, so that every
/// layer can draw it (`Runtime` makes one from a loaded model or its config: `StructureFigure(config:)`).
public struct StructureFigure: Equatable, Sendable {
    /// One encoder layer: what it keeps of the original layer's heads and FFN units.
    public struct Layer: Equatable, Sendable {
        public var heads: Int
        public var originalHeads: Int
        public var ffnUnits: Int
        public var originalFFNUnits: Int

        public init(heads: Int, originalHeads: Int, ffnUnits: Int, originalFFNUnits: Int) {
            self.heads = heads
            self.originalHeads = originalHeads
            self.ffnUnits = ffnUnits
            self.originalFFNUnits = originalFFNUnits
        }
    }

    /// The layers, first to last.
    public var layers: [Layer]
    /// The kept hidden width and the original one.
    public var hiddenSize: Int
    public var originalHiddenSize: Int

    public init(layers: [Layer], hiddenSize: Int, originalHiddenSize: Int) {
        self.layers = layers
        self.hiddenSize = hiddenSize
        self.originalHiddenSize = originalHiddenSize
    }

    /// The figure as a standalone SVG document (the same data always gives the same bytes).
    public func svg() -> String {
        var chart = SVGChart(title: "Kept structure per layer (hidden dims \(hiddenSize) of \(originalHiddenSize))",
                             xLabel: "layer", yLabel: "% of the dense layer kept")
        chart.height = 320
        func percent(_ kept: Int, of original: Int) -> Double { original == 0 ? 0 : 100 * Double(kept) / Double(original) }
        return chart.bars(
            categories: layers.indices.map { "\($0 + 1)" },
            series: [("attention heads", layers.map { percent($0.heads, of: $0.originalHeads) },
                      layers.map { "\($0.heads)/\($0.originalHeads)" }, SVGChart.palette[0]),
                     ("FFN units", layers.map { percent($0.ffnUnits, of: $0.originalFFNUnits) },
                      layers.map { "\($0.ffnUnits)/\($0.originalFFNUnits)" }, SVGChart.palette[1])],
            maxValue: 100)
    }
}

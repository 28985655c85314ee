import Foundation
import Formats

/// Small, dependency-free SVG charts for run reports: line charts of training curves (several series, points or
/// lines, optional horizontal reference lines and vertical stage boundaries) and grouped bar charts. The output is a
/// standalone SVG 1.1 document that any browser renders; text is escaped, numbers are written with a fixed number of
/// decimals so that the same data always gives the same bytes.
public struct SVGChart {
    /// One series of a line chart.
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: String
        /// Draw markers instead of a polyline (for sparse samples such as evaluations).
        public var markers: Bool
        public var dashed: Bool

        public init(name: String, points: [(x: Double, y: Double)], color: String, markers: Bool = false, dashed: Bool = false) {
            self.name = name
            self.points = points.filter { $0.x.isFinite && $0.y.isFinite }
            self.color = color
            self.markers = markers
            self.dashed = dashed
        }
    }

    /// A palette that stays distinguishable in print and for common colour-vision deficiencies (Okabe–Ito).
    public static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var width: Double = 720
    public var height: Double = 360

    public init(title: String, xLabel: String, yLabel: String) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
    }

    private let left = 70.0, right = 20.0, top = 58.0, bottom = 50.0

    /// "Nice" tick values covering [lo, hi]: steps of 1, 2 or 5 × 10^k, about `count` of them.
    public static func ticks(_ lo: Double, _ hi: Double, count: Int = 6) -> [Double] {
        guard lo.isFinite, hi.isFinite, hi > lo else { return lo.isFinite ? [lo] : [] }
        let raw = (hi - lo) / Double(max(count - 1, 1))
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2.0, 5.0, 10.0].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var values: [Double] = []
        var v = ceil(lo / step - 1e-9) * step
        while v <= hi + step * 1e-9 {
            values.append(abs(v) < step * 1e-9 ? 0 : v)
            v += step
        }
        return values
    }

    static func number(_ v: Double) -> String { String(format: "%.2f", v) }

    /// A tick or bar label: up to 4 decimals, trailing zeros removed; very large or small values in %g form.
    public static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 10_000 || abs(v) < 0.001 { return String(format: "%.2g", v) }
        var s = String(format: "%.4f", v)
        while s.contains(".") && (s.hasSuffix("0") || s.hasSuffix(".")) { s.removeLast() }
        return s
    }

    static func escape(_ s: String) -> String { Markup.escape(s) }

    private func header() -> [String] {
        ["<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
         "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">",
         "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
         "<text x=\"\(Self.number(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">\(Self.escape(title))</text>"]
    }

    private func axes(xTicks: [(Double, String)], yTicks: [(Double, String)]) -> [String] {
        let x0 = left, x1 = width - right, y0 = height - bottom, y1 = top
        var out = ["<g stroke=\"#dddddd\" stroke-width=\"1\">"]
        for (y, _) in yTicks { out.append("<line x1=\"\(Self.number(x0))\" y1=\"\(Self.number(y))\" x2=\"\(Self.number(x1))\" y2=\"\(Self.number(y))\"/>") }
        out.append("</g>")
        out.append("<rect x=\"\(Self.number(x0))\" y=\"\(Self.number(y1))\" width=\"\(Self.number(x1 - x0))\" height=\"\(Self.number(y0 - y1))\" fill=\"none\" stroke=\"#333333\"/>")
        for (x, text) in xTicks {
            out.append("<line x1=\"\(Self.number(x))\" y1=\"\(Self.number(y0))\" x2=\"\(Self.number(x))\" y2=\"\(Self.number(y0 + 5))\" stroke=\"#333333\"/>")
            out.append("<text x=\"\(Self.number(x))\" y=\"\(Self.number(y0 + 18))\" text-anchor=\"middle\">\(Self.escape(text))</text>")
        }
        for (y, text) in yTicks {
            out.append("<text x=\"\(Self.number(x0 - 8))\" y=\"\(Self.number(y + 4))\" text-anchor=\"end\">\(Self.escape(text))</text>")
        }
        out.append("<text x=\"\(Self.number((x0 + x1) / 2))\" y=\"\(Self.number(height - 12))\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>")
        out.append("<text transform=\"translate(16 \(Self.number((y0 + y1) / 2))) rotate(-90)\" text-anchor=\"middle\">\(Self.escape(yLabel))</text>")
        return out
    }

    private func legend(_ entries: [(name: String, color: String, dashed: Bool, marker: Bool)]) -> [String] {
        var out: [String] = []
        var x = left
        let y = top - 12
        for e in entries {
            if e.marker {
                out.append("<circle cx=\"\(Self.number(x + 9))\" cy=\"\(Self.number(y - 4))\" r=\"3.5\" fill=\"\(e.color)\"/>")
            } else {
                out.append("<line x1=\"\(Self.number(x))\" y1=\"\(Self.number(y - 4))\" x2=\"\(Self.number(x + 18))\" y2=\"\(Self.number(y - 4))\" stroke=\"\(e.color)\" stroke-width=\"2\"\(e.dashed ? " stroke-dasharray=\"6 4\"" : "")/>")
            }
            out.append("<text x=\"\(Self.number(x + 24))\" y=\"\(Self.number(y))\">\(Self.escape(e.name))</text>")
            x += 34 + Double(e.name.count) * 6.6
        }
        return out
    }

    /// A line chart of `series`, with horizontal reference lines `hLines` (label, y, colour) and vertical boundaries
    /// `vLines` (label, x); an empty label draws the line alone. The y range covers the data and the reference lines, or `yRange` when given.
    public func lines(_ series: [Series], hLines: [(label: String, y: Double, color: String)] = [],
                      vLines: [(label: String, x: Double)] = [], yRange: ClosedRange<Double>? = nil) -> String {
        let xs = series.flatMap { $0.points.map(\.x) } + vLines.map(\.x)
        var ys = series.flatMap { $0.points.map(\.y) } + hLines.map(\.y)
        if ys.isEmpty { ys = [0, 1] }
        var xLo = xs.min() ?? 0, xHi = xs.max() ?? 1
        if xHi <= xLo { xHi = xLo + 1 }
        var yLo = yRange?.lowerBound ?? ys.min()!, yHi = yRange?.upperBound ?? ys.max()!
        if yHi <= yLo { yLo -= 0.5; yHi += 0.5 }
        if yRange == nil { let pad = (yHi - yLo) * 0.05; yLo -= pad; yHi += pad }
        xLo = min(xLo, 0)
        let x0 = left, x1 = width - right, y0 = height - bottom, y1 = top
        func px(_ x: Double) -> Double { x0 + (x - xLo) / (xHi - xLo) * (x1 - x0) }
        func py(_ y: Double) -> Double { y0 - (min(max(y, yLo), yHi) - yLo) / (yHi - yLo) * (y0 - y1) }
        var out = header()
        out += axes(xTicks: Self.ticks(xLo, xHi).map { (px($0), Self.label($0)) },
                    yTicks: Self.ticks(yLo, yHi).map { (py($0), Self.label($0)) })
        for v in vLines {
            out.append("<line x1=\"\(Self.number(px(v.x)))\" y1=\"\(Self.number(y1))\" x2=\"\(Self.number(px(v.x)))\" y2=\"\(Self.number(y0))\" stroke=\"#888888\" stroke-dasharray=\"3 3\"/>")
            out.append("<text x=\"\(Self.number(px(v.x) + 4))\" y=\"\(Self.number(y0 - 6))\" fill=\"#555555\">\(Self.escape(v.label))</text>")
        }
        for h in hLines {
            out.append("<line x1=\"\(Self.number(x0))\" y1=\"\(Self.number(py(h.y)))\" x2=\"\(Self.number(x1))\" y2=\"\(Self.number(py(h.y)))\" stroke=\"\(h.color)\" stroke-dasharray=\"8 4\"/>")
            if !h.label.isEmpty {
                out.append("<text x=\"\(Self.number(x1 - 4))\" y=\"\(Self.number(py(h.y) - 5))\" text-anchor=\"end\" fill=\"\(h.color)\">\(Self.escape(h.label))</text>")
            }
        }
        for s in series where !s.points.isEmpty {
            if s.markers {
                for p in s.points {
                    out.append("<circle cx=\"\(Self.number(px(p.x)))\" cy=\"\(Self.number(py(p.y)))\" r=\"3\" fill=\"\(s.color)\"/>")
                }
            } else {
                let path = s.points.map { "\(Self.number(px($0.x))),\(Self.number(py($0.y)))" }.joined(separator: " ")
                out.append("<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"6 4\"" : "")/>")
            }
        }
        out += legend(series.map { ($0.name, $0.color, $0.dashed, $0.markers) })
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }

    /// A grouped bar chart: one group per category, one bar per series; `values[s][c]` is series s in category c,
    /// drawn against `maxValue`, each bar labelled with `labels[c]` (default: its value).
    public func bars(categories: [String], series: [(name: String, values: [Double], labels: [String]?, color: String)],
                     maxValue: Double) -> String {
        let x0 = left, x1 = width - right, y0 = height - bottom, y1 = top
        let hi = maxValue > 0 ? maxValue : 1
        func py(_ y: Double) -> Double { y0 - min(max(y, 0), hi) / hi * (y0 - y1 - 24) }
        let groupWidth = (x1 - x0) / Double(max(categories.count, 1))
        let barWidth = groupWidth * 0.8 / Double(max(series.count, 1))
        var out = header()
        out += axes(xTicks: categories.enumerated().map { (x0 + (Double($0.offset) + 0.5) * groupWidth, $0.element) },
                    yTicks: Self.ticks(0, hi, count: 5).map { (py($0), Self.label($0)) })
        for (si, s) in series.enumerated() {
            for (ci, v) in s.values.enumerated() where ci < categories.count {
                let x = x0 + Double(ci) * groupWidth + groupWidth * 0.1 + Double(si) * barWidth
                let y = py(v)
                out.append("<rect x=\"\(Self.number(x))\" y=\"\(Self.number(y))\" width=\"\(Self.number(barWidth - 2))\" height=\"\(Self.number(y0 - y))\" fill=\"\(s.color)\"/>")
                let text = s.labels.flatMap { ci < $0.count ? $0[ci] : nil } ?? Self.label(v)
                out.append("<text x=\"\(Self.number(x + (barWidth - 2) / 2))\" y=\"\(Self.number(y - 4))\" text-anchor=\"middle\" font-size=\"10\">\(Self.escape(text))</text>")
            }
        }
        out += legend(series.map { ($0.name, $0.color, false, false) })
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }
}

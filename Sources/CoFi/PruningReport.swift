import Charts
import Foundation
import Training

/// The human-readable record of a `cofi prune` run: `report.md` and SVG figures in `<OUT>/figures/`, made from the
/// run's own files — `summary.json` and the stages' `metrics.jsonl` — so it can be (re)made at any time
/// (`cofi report OUT`) and always shows what the run measured.
///
/// Figures: `architecture.svg` (heads and FFN units kept per layer, as fractions of the dense layer, with the
/// counts; dropped sublayers read 0), `sparsity.svg` (expected sparsity ŝ against the target schedule t, the
/// exact sparsity at each evaluation, the ±ε band), `lambda.svg` (λ1, λ2), `losses.svg` (total loss and the
/// distillation parts over all stages), `metric.svg` (the dev metric at each evaluation against the teacher's).
public struct PruningReport {
    /// One stage's metrics.jsonl, read.
    struct Stage {
        var name: String
        var offset: Int
        var totalSteps: Int
        var train: [[String: Any]]
        var evals: [[String: Any]]
        var arguments: [String: String]
    }

    public let directory: URL
    public let summary: PruningSummary
    let stages: [Stage]

    /// Reads `summary.json` and every stage's `metrics.jsonl` under `directory` (missing stages are skipped).
    public init(directory: URL) throws {
        self.directory = directory
        let summaryURL = directory.appendingPathComponent("summary.json")
        guard let data = try? Data(contentsOf: summaryURL) else {
            throw PruningError("\(summaryURL.path): no summary; a report needs a finished `cofi prune` run")
        }
        do { summary = try JSONDecoder().decode(PruningSummary.self, from: data) } catch {
            throw PruningError("\(summaryURL.path): not a cofi prune summary (\(error))")
        }
        var stages: [Stage] = []
        var offset = 0
        for name in ["preprune", "prune", "finetune"] {
            let url = directory.appendingPathComponent(name).appendingPathComponent("metrics.jsonl")
            guard let text = try? String(contentsOf: url, encoding: .utf8) else { continue }
            var stage = Stage(name: name, offset: offset, totalSteps: 0, train: [], evals: [], arguments: [:])
            for (i, line) in text.split(separator: "\n").enumerated() where !line.isEmpty {
                guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                    throw PruningError("\(url.path):\(i + 1): not a JSON object")
                }
                switch object["event"] as? String {
                case "start":
                    stage.totalSteps = object["total_steps"] as? Int ?? stage.totalSteps
                    stage.arguments = object["arguments"] as? [String: String] ?? stage.arguments
                case "train": stage.train.append(object)
                case "eval": stage.evals.append(object)
                default: break
                }
            }
            stages.append(stage)
            offset += stage.totalSteps
        }
        self.stages = stages
    }

    static func value(_ object: [String: Any], _ key: String) -> Double? {
        if let v = object[key] as? Double { return v }
        if let v = object[key] as? Int { return Double(v) }
        if let m = object["metrics"] as? [String: Any] { return value(m, key) }
        return nil
    }

    func series(_ key: String, in stageNames: Set<String>, evals: Bool = false) -> [(x: Double, y: Double)] {
        stages.filter { stageNames.contains($0.name) }.flatMap { stage in
            (evals ? stage.evals : stage.train).compactMap { o -> (x: Double, y: Double)? in
                guard let step = o["step"] as? Int, let v = Self.value(o, key) else { return nil }
                return (Double(stage.offset + step), v)
            }
        }
    }

    var pruneArguments: [String: String] { stages.first { $0.name == "prune" }?.arguments ?? [:] }

    var epsilon: Double? { pruneArguments["sparsity_epsilon"].flatMap(Double.init) }

    var boundaries: [(label: String, x: Double)] {
        stages.map { ($0.name, Double($0.offset)) }
    }

    /// The SVG figures by file name.
    public func figures() -> [String: String] {
        let c = SVGChart.palette
        var out: [String: String] = [:]
        let s = summary
        out["architecture.svg"] = StructureFigure(
            layers: zip(s.layers, s.originalLayers).map {
                .init(heads: $0.heads, originalHeads: $1.heads, ffnUnits: $0.ffnUnits, originalFFNUnits: $1.ffnUnits)
            },
            hiddenSize: s.hiddenSize, originalHiddenSize: s.originalHiddenSize).svg()

        let prune: Set<String> = ["prune"]
        if let target = s.targetLatencyMs {
            let tol = pruneArguments["latency_tolerance"].flatMap(Double.init)
            out["latency.svg"] = SVGChart(title: "Predicted latency while pruning", xLabel: "step", yLabel: "ms").lines(
                [.init(name: "expected under the gates", points: series("expected_latency_ms", in: prune), color: c[0]),
                 .init(name: "target ramp", points: series("target_latency_ms", in: prune), color: c[1], dashed: true),
                 .init(name: "kept structure (evaluations)", points: series("predicted_latency_ms", in: prune, evals: true),
                       color: c[2], markers: true)],
                hLines: [("target \(SVGChart.label(target)) ms" + (tol.map { " ± \(Int(($0 * 100).rounded())) %" } ?? ""), target, "#555555")]
                    + (tol.map { [("", target * (1 + $0), "#bbbbbb"), ("", target * (1 - $0), "#bbbbbb")] } ?? []),
                vLines: boundaries.filter { $0.label == "prune" })
        }
        if let rungs = s.rungs {
            let done = rungs.filter { $0.finalMetric != nil || $0.prunedMetric != nil }
            func points(_ x: (RungSummary) -> Double?, _ y: (RungSummary) -> Double?) -> [(x: Double, y: Double)] {
                done.compactMap { r in x(r).flatMap { xv in y(r).map { (xv, $0) } } }
            }
            let teacherLine = s.teacherMetric.map { [("teacher \(String(format: "%.4f", $0))", $0, c[6])] } ?? []
            out["pareto_params.svg"] = SVGChart(title: "Ladder: dev \(s.metricName) against encoder parameters",
                                                xLabel: "encoder parameters (millions)", yLabel: s.metricName).lines(
                [.init(name: "fine-tuned", points: points({ $0.encoderParameters.map { Double($0) / 1e6 } }, \.finalMetric), color: c[0], markers: true),
                 .init(name: "pruned, before fine-tuning", points: points({ $0.encoderParameters.map { Double($0) / 1e6 } }, \.prunedMetric),
                       color: c[1], markers: true)],
                hLines: teacherLine)
            if done.contains(where: { $0.measuredLatencyMs != nil }) {
                out["pareto_latency.svg"] = SVGChart(title: "Ladder: dev \(s.metricName) against measured latency",
                                                     xLabel: "measured latency (ms)", yLabel: s.metricName).lines(
                    [.init(name: "fine-tuned", points: points(\.measuredLatencyMs, \.finalMetric), color: c[0], markers: true),
                     .init(name: "pruned, before fine-tuning", points: points(\.measuredLatencyMs, \.prunedMetric), color: c[1], markers: true)],
                    hLines: teacherLine)
            }
        }
        var hLines: [(label: String, y: Double, color: String)] = []
        if let e = epsilon, e > 0 {
            hLines.append(("", s.targetSparsity + e, "#bbbbbb"))
            hLines.append(("", s.targetSparsity - e, "#bbbbbb"))
        }
        hLines.append(("target \(SVGChart.label(s.targetSparsity))" + (epsilon.map { $0 > 0 ? " ± \(SVGChart.label($0))" : "" } ?? ""),
                       s.targetSparsity, "#555555"))
        out["sparsity.svg"] = SVGChart(title: "Sparsity while pruning", xLabel: "step", yLabel: "sparsity").lines(
            [.init(name: "expected ŝ", points: series("expected_sparsity", in: prune), color: c[0]),
             .init(name: "target t(k)", points: series("target_sparsity", in: prune), color: c[1], dashed: true),
             .init(name: "exact (evaluations)", points: series("exact_sparsity", in: prune, evals: true), color: c[2], markers: true)],
            hLines: hLines, vLines: boundaries.filter { $0.label == "prune" })
        out["lambda.svg"] = SVGChart(title: "Lagrange multipliers", xLabel: "step", yLabel: "value").lines(
            [.init(name: "λ1", points: series("lambda_1", in: prune), color: c[0]),
             .init(name: "λ2", points: series("lambda_2", in: prune), color: c[1])],
            vLines: boundaries.filter { $0.label == "prune" })
        let all = Set(stages.map(\.name))
        out["losses.svg"] = SVGChart(title: "Training losses", xLabel: "step (all stages)", yLabel: "loss").lines(
            [.init(name: "total", points: series("loss", in: all), color: c[6]),
             .init(name: "prediction distillation", points: series("distill_pred", in: all), color: c[0]),
             .init(name: "layer distillation", points: series("distill_layer", in: all), color: c[1])],
            vLines: boundaries)
        let metric = s.metricName
        out["metric.svg"] = SVGChart(title: "Dev \(metric)", xLabel: "step (all stages)", yLabel: metric).lines(
            [.init(name: "dev \(metric) (deterministic masks / compact model)",
                   points: stages.filter { $0.name != "preprune" }.flatMap { st in
                       st.evals.compactMap { o -> (x: Double, y: Double)? in
                           guard let step = o["step"] as? Int, let v = Self.value(o, "value") else { return nil }
                           return (Double(st.offset + step), v)
                       }
                   }, color: c[0], markers: true)],
            hLines: s.teacherMetric.map { [("teacher \(String(format: "%.4f", $0))", $0, c[1])] } ?? [],
            vLines: boundaries)
        return out
    }

    /// report.md.
    public func markdown() -> String {
        let s = summary
        func f(_ v: Double?, _ digits: Int = 4) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "–" }
        var lines = ["# CoFi pruning report", ""]
        let args = pruneArguments
        if let teacher = args["teacher"], let student = args["student"] {
            lines.append("Teacher `\(teacher)`, student `\(student)`, task `\(args["task"] ?? "?")`.")
            lines.append("")
        }
        if let gate = s.gateMissed {
            lines += ["> **Warning:** no evaluation met the checkpoint gate (\(gate)). This model is the evaluation "
                      + "closest to it, \(f(s.gateGap)) outside; train longer, warm up sooner or evaluate more often "
                      + "to land in the band (`--require-gate` stops without a model instead).", ""]
        }
        lines += ["## Result", "",
                  "| | value |", "| --- | ---: |",
                  "| target sparsity | \(f(s.targetSparsity, 2)) |",
                  "| exact sparsity (of M, the prunable size) | \(f(s.exactSparsity)) |",
                  "| expected sparsity ŝ at the kept checkpoint | \(f(s.expectedSparsity)) |",
                  "| encoder parameters | \(s.encoderParametersBefore) → \(s.encoderParametersAfter) |",
                  "| hidden dims | \(s.hiddenSize) of \(s.originalHiddenSize) |",
                  "| dev \(s.metricName): teacher | \(f(s.teacherMetric)) |",
                  "| dev \(s.metricName): pruned (step \(s.prunedStep.map(String.init) ?? "–")) | \(f(s.prunedMetric)) |",
                  "| dev \(s.metricName): fine-tuned compact model | \(f(s.finalMetric)) |", ""]
        if let target = s.targetLatencyMs {
            lines.insert(contentsOf: ["| target latency (ms, as the profile predicts) | \(f(target, 3)) |",
                                      "| predicted latency of the kept structure (ms) | \(f(s.predictedLatencyMs, 3)) |",
                                      "| measured latency of final/ (ms) | \(f(s.measuredLatencyMs, 3)) |",
                                      "| dense: predicted / measured teacher (ms) | \(f(s.denseLatencyMs, 3)) / \(f(s.measuredTeacherLatencyMs, 3)) |"],
                         at: lines.count - 1)
            lines += ["![latency](figures/latency.svg)", ""]
        } else if let measured = s.measuredLatencyMs {
            lines.insert("| measured latency of final/ (ms; teacher) | \(f(measured, 3)) (\(f(s.measuredTeacherLatencyMs, 3))) |", at: lines.count - 1)
        }
        if let rungs = s.rungs {
            lines += ["## Ladder", "",
                      "One pruning run, one compact model per rung (`rungs/<rung>/final`; the last rung's is `final/`). "
                      + "Latencies: predicted by the profile, and measured on the saved model under the profile's conditions "
                      + "(or one sequence of 128 tokens).", "",
                      "| rung | exact sparsity | encoder params | dev \(s.metricName) pruned (step) | fine-tuned | predicted ms | measured ms | model |",
                      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
            for r in rungs {
                lines.append("| \(r.label) | \(f(r.exactSparsity)) | \(r.encoderParameters.map(String.init) ?? "–") | "
                             + "\(f(r.prunedMetric)) (\(r.prunedStep.map(String.init) ?? "–")) | \(f(r.finalMetric)) | "
                             + "\(f(r.predictedLatencyMs, 3)) | \(f(r.measuredLatencyMs, 3)) | "
                             + (r.finalDirectory.map { "`\($0)`" } ?? "no evaluation landed in the band") + " |")
            }
            lines += ["", "![Pareto: parameters](figures/pareto_params.svg)", ""]
            if rungs.contains(where: { $0.measuredLatencyMs != nil }) { lines += ["![Pareto: latency](figures/pareto_latency.svg)", ""] }
        }
        lines += ["## Architecture", "", "![kept structure](figures/architecture.svg)", "",
                  "| layer | heads | FFN units | attention | FFN |", "| ---: | ---: | ---: | --- | --- |"]
        for (l, (a, b)) in zip(s.layers, s.originalLayers).enumerated() {
            lines.append("| \(l + 1) | \(a.heads) of \(b.heads) | \(a.ffnUnits) of \(b.ffnUnits) | "
                         + (a.heads == 0 ? "dropped" : "kept") + " | " + (a.ffnUnits == 0 ? "dropped" : "kept") + " |")
        }
        lines += ["", "## Sparsity trajectory", "", "![sparsity](figures/sparsity.svg)", "",
                  "![lambda](figures/lambda.svg)", "",
                  "| step | target t | expected ŝ | exact | dev \(s.metricName) | λ1 | λ2 |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        if let prune = stages.first(where: { $0.name == "prune" }) {
            let trainByStep = Dictionary(prune.train.compactMap { o in (o["step"] as? Int).map { ($0, o) } }, uniquingKeysWith: { a, _ in a })
            for e in prune.evals {
                guard let step = e["step"] as? Int else { continue }
                let t = trainByStep[step]
                lines.append("| \(step) | \(f(t.flatMap { Self.value($0, "target_sparsity") })) | \(f(Self.value(e, "expected_sparsity"))) | "
                             + "\(f(Self.value(e, "exact_sparsity"))) | \(f(Self.value(e, "value"))) | "
                             + "\(f(t.flatMap { Self.value($0, "lambda_1") }, 3)) | \(f(t.flatMap { Self.value($0, "lambda_2") }, 3)) |")
            }
        }
        lines += ["", "## Training", "", "![losses](figures/losses.svg)", "", "![metric](figures/metric.svg)", "",
                  "Wall time: " + ["preprune", "prune", "compact", "finetune", "rungs"].compactMap { k in
                      s.stageSeconds[k].map { "\(k) \(String(format: "%.0f", $0)) s" } }.joined(separator: ", ") + ".", ""]
        if !args.isEmpty {
            lines += ["## Arguments", "", "| argument | value |", "| --- | --- |"]
            for (k, v) in args.sorted(by: { $0.key < $1.key }) { lines.append("| \(k) | `\(v)` |") }
            lines.append("")
        }
        return lines.joined(separator: "\n")
    }

    /// Writes report.md and figures/*.svg into the run directory (each atomically); returns report.md's URL.
    @discardableResult
    public func write() throws -> URL {
        let figuresDir = directory.appendingPathComponent("figures")
        try FileManager.default.createDirectory(at: figuresDir, withIntermediateDirectories: true)
        for (name, svg) in figures() {
            try Data(svg.utf8).write(to: figuresDir.appendingPathComponent(name), options: .atomic)
        }
        let url = directory.appendingPathComponent("report.md")
        try Data(markdown().utf8).write(to: url, options: .atomic)
        return url
    }
}

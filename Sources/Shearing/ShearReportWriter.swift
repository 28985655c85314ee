import Foundation

/// report.md of a `cofi shear` run: the stages with their shapes, parameters, held-out losses and perplexities,
/// the reference losses, the cut's check, and the per-source weights of dynamic batch loading over the run.
public enum ShearReportWriter {
    public static func markdown(_ r: ShearReport) -> String {
        let s = r.settings
        let names = r.referenceLoss.keys.sorted()
        var md = "# cofi shear: \(s.initialization.rawValue) to \(s.target.text)\n\n"
        md += "Source `\(s.model)`; text sources " + names.map { "`\($0)` (\(r.sources[$0] ?? 0) tokens)" }.joined(separator: ", ")
        md += "; sequences of \(s.seqLen) tokens, batch \(s.batch); pruning \(s.initialization == .sheared ? "\(s.pruneSteps) steps" : "none")"
        md += ", continued training \(s.trainSteps) steps (\(r.trainTokens) tokens)"
        if let dir = s.sameTokensAs { md += ", replaying the data order of `\(dir)`" }
        md += ".\n\n| stage | shape | parameters | " + names.map { "held-out loss \($0)" }.joined(separator: " | ")
        md += " | eval perplexity | seconds |\n|" + String(repeating: " --- |", count: 5 + names.count) + "\n"
        for st in r.stages {
            md += "| \(st.name) | \(st.shape) | \(st.parameters) | "
            md += names.map { String(format: "%.4f", st.heldOutLoss[$0] ?? .nan) }.joined(separator: " | ")
            md += " | " + (st.evalPerplexity.map { String(format: "%.3f", $0) } ?? "—") + String(format: " | %.0f |\n", st.seconds)
        }
        md += "\nReference losses (the source's, which dynamic batch loading measures each source against): "
        md += names.map { String(format: "%@ %.4f", $0, r.referenceLoss[$0]!) }.joined(separator: ", ") + ".\n"
        if let d = r.maskedVsCompact { md += String(format: "\nMasked ≡ compact: logits max abs difference %.2e.\n", d) }
        if let c = r.expectedCountsAtCut {
            md += String(format: "\nExpected counts under the gates at the cut: layers %.2f, KV heads per layer %.2f, FFN units per layer %.1f, hidden %.1f (the cut keeps the target's counts exactly).\n",
                         c["layers"]!, c["heads"]!, c["ffn"]!, c["hidden"]!)
        }
        if !r.sourceWeights.isEmpty {
            md += "\nSource weights after each evaluation (dynamic batch loading):\n\n| eval | " + names.joined(separator: " | ") + " |\n|"
            md += String(repeating: " --- |", count: names.count + 1) + "\n"
            for (i, w) in r.sourceWeights.enumerated() {
                md += "| \(i + 1) | " + names.map { String(format: "%.3f", w[$0] ?? .nan) }.joined(separator: " | ") + " |\n"
            }
        }
        return md
    }
}

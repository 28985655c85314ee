import Foundation
import Formats
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the progress line shows after a step.
public struct ProgressSnapshot: Sendable {
    /// 1-based epoch in progress and the run's epoch count.
    public var epoch: Int
    public var epochs: Int
    /// Steps taken (1-based) of the run's total.
    public var step: Int
    public var totalSteps: Int
    /// Mean loss over the steps since the last logged line.
    public var loss: Double
    public var learningRate: Double
    public var examplesPerSecond: Double
    /// Seconds left at the current pace (training steps only).
    public var etaSeconds: Double
}

/// The live progress line on stderr: rewritten in place (carriage return) after every step when stderr is a
/// terminal, otherwise one line every `lineEvery` steps so that logs stay readable. Messages (evaluations, epoch
/// ends, the summary) are whole lines that do not disturb it.
public final class ProgressReporter {
    public let isTTY: Bool
    public let lineEvery: Int
    private let handle: FileHandle
    private var liveLine = false
    private var lastDraw = 0.0

    public init(handle: FileHandle = .standardError, isTTY: Bool? = nil, lineEvery: Int = 50) {
        self.handle = handle
        self.isTTY = isTTY ?? (isatty(handle.fileDescriptor) != 0)
        self.lineEvery = max(1, lineEvery)
    }

    /// "epoch 1/3  step 120/897  loss 0.4321  lr 1.73e-05  41.2 ex/s  ETA 6m05s"
    public static func format(_ p: ProgressSnapshot) -> String {
        "epoch \(p.epoch)/\(p.epochs)  step \(p.step)/\(p.totalSteps)  loss " + String(format: "%.4f", p.loss)
            + "  lr " + String(format: "%.3g", p.learningRate) + "  " + String(format: "%.1f", p.examplesPerSecond)
            + " ex/s  ETA " + duration(p.etaSeconds)
    }

    /// "1h02m", "6m05s", "42s".
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite && seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
        if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return "\(s)s"
    }

    /// Shows the state after a step.
    public func update(_ p: ProgressSnapshot) {
        if isTTY {
            let now = Date().timeIntervalSince1970
            guard now - lastDraw >= 0.1 || p.step == p.totalSteps else { return }
            lastDraw = now
            write("\r\u{1B}[K" + Self.format(p))
            liveLine = true
        } else if p.step % lineEvery == 0 || p.step == 1 || p.step == p.totalSteps {
            write(Self.format(p) + "\n")
        }
    }

    /// Prints a whole line (ending the live line first).
    public func message(_ text: String) {
        if liveLine {
            write("\r\u{1B}[K")
            liveLine = false
        }
        write(text + "\n")
    }

    /// Ends the live line.
    public func finish() {
        if liveLine {
            write("\n")
            liveLine = false
        }
    }

    private func write(_ s: String) { handle.write(Data(s.utf8)) }
}

/// `metrics.jsonl`: one JSON object per line, each with an "event" ("start", "train", "eval", "epoch", "resume",
/// "stopped", "end") and, after the start, the "step" it belongs to. Lines are written as they happen.
public final class MetricsLog {
    public let url: URL
    private let handle: FileHandle

    /// Opens the log. `keepingStepsUpTo` nil starts a new file; a step count keeps the lines of an earlier run up to
    /// that step (a resumed run drops what it is about to redo, so the log reads as one uninterrupted run).
    public init(url: URL, keepingStepsUpTo step: Int?) throws {
        self.url = url
        var kept = Data()
        if let step, let old = try? Data(contentsOf: url) {
            for line in old.split(separator: 0x0A) where !line.isEmpty {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { continue }
                if object["event"] as? String == "end" { continue }
                if let s = object["step"] as? Int, s > step { continue }
                kept.append(contentsOf: line)
                kept.append(0x0A)
            }
        }
        do {
            try kept.write(to: url, options: .atomic)
            handle = try FileHandle(forWritingTo: url)
            handle.seekToEndOfFile()
        } catch {
            throw TrainerError("\(url.path): cannot write the metrics log (\(error.localizedDescription))")
        }
    }

    deinit { try? handle.close() }

    /// Appends one record; keys keep their order, non-finite numbers are written as null.
    public func append(_ fields: [(String, Any?)]) {
        handle.write(Data((JSON.object(fields) + "\n").utf8))
    }

    /// Reads every record of a metrics log.
    public static func read(_ url: URL) throws -> [[String: Any]] {
        let data = try Data(contentsOf: url)
        return try data.split(separator: 0x0A).filter { !$0.isEmpty }.map {
            guard let o = try JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] else {
                throw TrainerError("\(url.path): a line is not a JSON object")
            }
            return o
        }
    }

}

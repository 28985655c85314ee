import Formats
import Foundation
import Logging

/// A swift-log handler that writes each entry as one logfmt line:
/// `ts=2026-01-02T03:04:05.678Z level=info msg=request method=POST path=/predict status=200 inputs=2 latency_ms=3.1`.
///
/// Keys: `ts` (UTC, milliseconds), `level`, `msg`, then the metadata — the request keys in a fixed order (`method`,
/// `path`, `status`, `inputs`, `latency_ms`), the others sorted by name. A value is written bare when it is a
/// non-empty run of characters other than space, `=`, `"` and control characters, else in double quotes with `"`,
/// `\` and line breaks escaped. Every line is one `write` (default: stderr), so concurrent lines do not interleave.
public struct LogfmtLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let write: @Sendable (String) -> Void

    /// A handler writing each line (without its newline) to `write`; default: stderr, with a newline.
    public init(label: String, write: @escaping @Sendable (String) -> Void = LogfmtLogHandler.standardError) {
        self.write = write
    }

    /// Writes `line` and a newline to stderr in one write.
    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let own = event.metadata { merged.merge(own) { $1 } }
        write(Self.line(date: Date(), level: event.level, message: "\(event.message)", metadata: merged))
    }

    /// Metadata keys written first, in this order.
    static let leadingKeys = ["method", "path", "status", "inputs", "latency_ms"]

    /// One logfmt line (no newline).
    static func line(date: Date, level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        var fields = ["ts=" + timestamp(date), "level=\(level)", "msg=" + quoted(message)]
        let leading = leadingKeys.filter { metadata[$0] != nil }
        let rest = metadata.keys.filter { !leadingKeys.contains($0) }.sorted()
        for key in leading + rest { fields.append(key + "=" + quoted("\(metadata[key]!)")) }
        return fields.joined(separator: " ")
    }

    /// `value` bare when it has no space, `=`, quote, backslash or control character; otherwise as a JSON string
    /// literal (`JSON.quote`: `"`, `\`, line feeds, carriage returns and tabs escaped, other controls as `\u00xx`).
    static func quoted(_ value: String) -> String {
        let bare = !value.isEmpty && value.unicodeScalars.allSatisfy {
            $0.value > 0x20 && $0 != "=" && $0 != "\"" && $0 != "\\" && $0.value != 0x7f
        }
        return bare ? value : JSON.quote(value)
    }

    /// `date` as ISO 8601 in UTC with milliseconds.
    static func timestamp(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        let ms = Int((date.timeIntervalSince1970 - Double(t)) * 1000)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), min(ms, 999))
    }
}

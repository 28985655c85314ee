#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Reads lines from a file descriptor with its own buffer, so that it can tell whether another line is waiting
/// without blocking (`lines(max:)` takes what is there, and blocks only for the first line of a batch).
/// Lines end at "\n"; a "\r" before it is dropped; the last line need not end with "\n".
public final class LineReader {
    private let fd: Int32
    private let ownsFD: Bool
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEnd = false
    private var lineNumber = 0
    /// A read error, if one stopped the input.
    public private(set) var error: String?

    /// Reads `file`, or stdin when nil.
    public init(file: URL?) throws {
        guard let file else {
            fd = 0
            ownsFD = false
            return
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw InputError("\(file.path): no such file (expected the input records, one per line)")
        }
        let opened = open(file.path, O_RDONLY)
        guard opened >= 0 else {
            throw InputError("\(file.path): cannot open the file (\(String(cString: strerror(errno))))")
        }
        fd = opened
        ownsFD = true
    }

    deinit { if ownsFD { close(fd) } }

    /// Up to `max` lines: waits for the first, then takes only lines already available. Empty at the end of input.
    public func lines(max: Int) -> [InputLine] {
        var out: [InputLine] = []
        while out.count < max, let line = nextLine(wait: out.isEmpty) { out.append(line) }
        return out
    }

    /// The next line; nil at the end of input, or when `wait` is false and no complete line is available.
    private func nextLine(wait: Bool) -> InputLine? {
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                var end = newline
                if end > start, buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                return take(end: end, next: newline + 1)
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                var end = buffer.count
                if buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                return take(end: end, next: buffer.count)
            }
            if !wait && !readable() { return nil }
            fill()
        }
    }

    private func take(end: Int, next: Int) -> InputLine {
        lineNumber += 1
        let line = InputLine(number: lineNumber, bytes: buffer[start..<end])
        start = next
        return line
    }

    /// Whether a read would return at once.
    private func readable() -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) > 0
    }

    /// Reads what is there (blocking until something is); sets `atEnd` at the end of input or on an error.
    private func fill() {
        if start > 0 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                buffer += chunk[0..<n]
                return
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { error = "cannot read the input: \(String(cString: strerror(errno)))" }
            atEnd = true
            return
        }
    }
}

/// Input that cannot be read at all (a missing or unreadable file): names the file and what was expected.
public struct InputError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

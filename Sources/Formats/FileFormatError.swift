// FileFormatError: a malformed, unreadable or unwritable file, located by its path and the key at fault.

/// A file that cannot be read, parsed or written as its format requires (a safetensors checkpoint, a
/// `config.json`, …). `description` reads "<path>: <message>"; the message names the key and what was expected
/// vs found.
public struct FileFormatError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file read or written (or the label a caller gave in its place).
    public let path: String
    /// The key at fault (a tensor name, a header key, a JSON key dotted for nested keys), when there is one.
    public let key: String?
    public let message: String

    public init(path: String, key: String? = nil, message: String) {
        self.path = path
        self.key = key
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

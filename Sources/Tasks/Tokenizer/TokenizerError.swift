/// A tokenizer that cannot be built or loaded, or an encoding that Hugging Face would refuse.
/// The description names the file (and line or JSON path) and what was expected.
public struct TokenizerError: Error, CustomStringConvertible, Equatable {
    public let description: String

    /// An error with this message.
    public init(_ description: String) {
        self.description = description
    }

    /// HF's message (tokenizers' `TruncationError::SequenceTooShort`) when `only_first` / `only_second` cannot
    /// remove enough tokens from its text.
    static let sequenceTooShort =
        "Truncation error: Sequence to truncate too short to respect the provided max_length"
}

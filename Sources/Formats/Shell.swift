// Shell: the one POSIX shell quoter, for commands recorded so that they can be pasted back into a shell.

import Foundation

/// Command lines as a POSIX shell reads them.
public enum Shell {
    /// `words` as one command line that a POSIX shell splits back into exactly these words: a word made only of
    /// ASCII letters, digits and `@%+=:,./_-` stays as it is; any other,
    /// the empty word included, is put in single quotes, with each `'` written as `'\''`. What `cofi prune` and
    /// `cofi finetune` record as "the command that made it" (`CommandLine.arguments`).
    public static func quote(_ words: [String]) -> String {
        words.map(quote).joined(separator: " ")
    }

    /// One word, quoted as `quote(_:)` quotes each.
    public static func quote(_ word: String) -> String {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-".unicodeScalars)
        if !word.isEmpty && word.unicodeScalars.allSatisfy(safe.contains) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

extension BertConfig {
    /// The label names of config.json's `id2label` in index order, when it names every index 0 ..< count; nil
    /// otherwise. What `cofi eval` reads a user's dev file with and what `cofi predict` answers with.
    public var labelNames: [String]? {
        guard let id2label else { return nil }
        let names = (0..<id2label.count).map { id2label["\($0)"] }
        guard names.allSatisfy({ $0 != nil }) else { return nil }
        return names.map { $0! }
    }
}

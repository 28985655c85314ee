// GGUFSummary: what `cofi inspect FILE.gguf` prints — the metadata and the tensor table.

extension GGUFFile {
    /// A readable summary: the version, alignment and counts, every metadata entry (type and value; long strings and
    /// arrays shortened), the tensors by element type, and one line per tensor (name, type, GGUF dimensions, bytes,
    /// data offset).
    public func summary() -> String {
        var lines = ["file: \(url.path)",
                     "GGUF version \(version), alignment \(alignment), \(metadata.count) metadata entries, \(tensors.count) tensors, data at byte \(dataOffset)",
                     "", "metadata:"]
        let keyWidth = metadata.map(\.key.count).max() ?? 0
        for (key, value) in metadata {
            lines.append("  " + key.padding(toLength: keyWidth, withPad: " ", startingAt: 0) + "  "
                         + value.type.name.padding(toLength: 7, withPad: " ", startingAt: 0) + " " + value.summary())
        }
        var byType: [GGMLType: (count: Int, bytes: Int)] = [:]
        for t in tensors { byType[t.type, default: (0, 0)].count += 1; byType[t.type, default: (0, 0)].bytes += t.byteCount }
        let parameters = tensors.reduce(0) { $0 + $1.count }
        lines += ["", "tensors: \(tensors.count), \(parameters) elements; "
                  + byType.sorted { ($1.value.count, $0.key.rawValue) < ($0.value.count, $1.key.rawValue) }
                      .map { "\($0.value.count) \($0.key.name) (\($0.value.bytes) bytes)" }.joined(separator: ", "), ""]
        let nameWidth = max(4, tensors.map(\.name.count).max() ?? 0)
        lines.append("  " + "name".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  type     dimensions (GGUF order)      bytes       offset")
        for t in tensors {
            let dims = "[" + t.dimensions.map(String.init).joined(separator: ", ") + "]"
            lines.append("  " + t.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  "
                         + t.type.name.padding(toLength: 7, withPad: " ", startingAt: 0) + "  "
                         + dims.padding(toLength: 22, withPad: " ", startingAt: 0)
                         + String(repeating: " ", count: max(0, 12 - String(t.byteCount).count)) + String(t.byteCount)
                         + String(repeating: " ", count: max(0, 13 - String(t.offset).count)) + String(t.offset))
        }
        return lines.joined(separator: "\n")
    }
}

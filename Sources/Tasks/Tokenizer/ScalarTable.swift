/// A read-only map from token text (as Unicode scalars) to id, looked up by a slice of a scalar buffer without
/// building a String: open addressing over an FNV-1a hash, keys stored back to back in one array.
/// `WordPieceTokenizer.vocabulary` (a `[String: Int]`) is the obviously-correct twin the tests compare it with.
struct ScalarTable: Sendable {
    private let keys: [UInt32]        // all keys, concatenated
    private let keyStart: [Int32]     // entry e's key is keys[keyStart[e] ..< keyStart[e] + keyLength[e]]
    private let keyLength: [Int32]
    private let values: [Int32]
    private let slots: [Int32]        // entry index + 1; 0 = empty
    private let mask: Int
    /// The longest key, in scalars: no longer slice can match.
    let maxKeyLength: Int

    init(_ entries: [(key: [UInt32], value: Int)]) {
        var keys: [UInt32] = [], keyStart: [Int32] = [], keyLength: [Int32] = [], values: [Int32] = []
        var capacity = 16
        while capacity < 2 * entries.count { capacity *= 2 }
        var slots = [Int32](repeating: 0, count: capacity)
        let mask = capacity - 1
        var maxKeyLength = 0
        for (key, value) in entries {
            let h = key.withUnsafeBufferPointer { Self.hash($0, 0..<key.count) }
            var s = h & mask
            var duplicate = false
            while slots[s] != 0 {
                let e = Int(slots[s] - 1)
                if keys[Int(keyStart[e])..<Int(keyStart[e] + keyLength[e])].elementsEqual(key) { duplicate = true; break }
                s = (s + 1) & mask
            }
            if duplicate { continue }  // first one wins; callers reject duplicates before
            slots[s] = Int32(values.count + 1)
            keyStart.append(Int32(keys.count))
            keyLength.append(Int32(key.count))
            keys += key
            values.append(Int32(value))
            maxKeyLength = max(maxKeyLength, key.count)
        }
        self.keys = keys
        self.keyStart = keyStart
        self.keyLength = keyLength
        self.values = values
        self.slots = slots
        self.mask = mask
        self.maxKeyLength = maxKeyLength
    }

    @inline(__always) static func hash(_ buffer: UnsafeBufferPointer<UInt32>, _ range: Range<Int>) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in range {
            h = (h ^ UInt64(buffer[i])) &* 0x0000_0100_0000_01b3
        }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// The value of the key equal to `buffer[range]`, if any.
    func lookup(_ buffer: UnsafeBufferPointer<UInt32>, _ range: Range<Int>) -> Int? {
        let n = range.count
        if n > maxKeyLength { return nil }
        var s = Self.hash(buffer, range) & mask
        return keys.withUnsafeBufferPointer { keys in
            slots.withUnsafeBufferPointer { slots in
                while true {
                    let slot = Int(slots[s])
                    if slot == 0 { return nil }
                    let e = slot - 1
                    if Int(keyLength[e]) == n {
                        let k = Int(keyStart[e])
                        var equal = true
                        for j in 0..<n where keys[k + j] != buffer[range.lowerBound + j] {
                            equal = false
                            break
                        }
                        if equal { return Int(values[e]) }
                    }
                    s = (s + 1) & mask
                }
            }
        }
    }
}

import Foundation

/// What the `cofi serve` page shows about the model besides the server's own facts (`HealthReport`): a title, a
/// figure of the model's kept structure, and the model card. Each is optional; the page works with none.
public struct ModelPage: Sendable, Equatable {
    /// The page's heading and `<title>`; nil: "cofi serve — MODEL" with the model's name.
    public var title: String?
    /// An SVG document drawing the model's kept structure (layers, heads, FFN width), shown as a figure.
    ///
    /// Trusted as our own code's output — but not pasted into the page's markup: the page shows it as an image
    /// (`<img src="data:image/svg+xml;base64,…">`), and a browser renders an SVG image without running its scripts
    /// or loading anything it references. So an SVG with a script or an external reference cannot act on the page,
    /// and its own styles fit the page's Content-Security-Policy.
    public var structureSVG: String?
    /// The model card: Markdown (a model directory's README.md), rendered on the server by `MarkdownHTML` with
    /// every text escaped — raw HTML in it is shown as text.
    public var cardMarkdown: String?

    public init(title: String? = nil, structureSVG: String? = nil, cardMarkdown: String? = nil) {
        self.title = title
        self.structureSVG = structureSVG
        self.cardMarkdown = cardMarkdown
    }

    /// The name of a model card in a model directory.
    public static let cardFileName = "README.md"
    /// The largest model card the page shows (1 MiB); a card is a page of text, so a larger file is a mistake.
    public static let maxCardBytes = 1 << 20

    /// The model card of `directory` (its README.md): nil when there is none. Throws `ModelPageError` naming the
    /// file when it cannot be read, is larger than `maxBytes` or is not UTF-8.
    public static func card(in directory: URL, maxBytes: Int = maxCardBytes) throws -> String? {
        let url = directory.appendingPathComponent(cardFileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let size: Int
        do {
            size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.intValue ?? 0
        } catch {
            throw ModelPageError(description: "\(url.path): cannot read the model card (\(error))")
        }
        guard size <= maxBytes else {
            throw ModelPageError(description: "\(url.path): the model card is \(size) bytes; the page shows one of "
                                 + "at most \(maxBytes) bytes")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelPageError(description: "\(url.path): cannot read the model card (\(error))")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ModelPageError(description: "\(url.path): the model card is not UTF-8 text")
        }
        return text
    }
}

/// A model card that cannot be shown, and why.
public struct ModelPageError: Error, CustomStringConvertible {
    public let description: String
}

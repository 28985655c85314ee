import Foundation

/// Where the fetched assets live, and paths as a user gives them.
public enum AssetsDirectory {
    /// `$COFI_ASSETS`, else `./.assets`.
    public static var url: URL {
        if let dir = ProcessInfo.processInfo.environment["COFI_ASSETS"] { return absoluteURL(dir) }
        return absoluteURL(".assets")
    }

    /// Fetches the default asset that `url` points into (the MiniLM model directory or the raw movie-snippets data
    /// under the assets directory) when it is missing; any other path is left alone. `log` receives progress lines.
    public static func fetchIfDefault(_ url: URL, log: (String) -> Void = { _ in }) throws {
        let assets = Self.url
        let path = url.standardizedFileURL.path
        for asset in Asset.all {
            let dir = assets.standardizedFileURL.path + "/" + asset.directory
            guard path == dir || path.hasPrefix(dir + "/") else { continue }
            guard !asset.isReady(in: assets) else { return }
            try asset.fetch(into: assets, log: log)
        }
    }
}

/// A path as given on the command line, made absolute against the working directory.
public func absoluteURL(_ path: String) -> URL {
    URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true))
        .standardizedFileURL
}

extension AssetsDirectory {
    /// Fetches every asset of `Asset.all` that is not ready (hash-checked) and builds the movie-snippets task from
    /// its raw file; `log` receives progress lines, `done` one line per asset ready and one for the built task.
    public static func fetchAll(log: (String) -> Void = { _ in }, done: (String) -> Void = { _ in }) throws {
        let assets = url
        for asset in Asset.all {
            try asset.fetch(into: assets, log: log)
            done("\(asset.directory): ready in \(assets.appendingPathComponent(asset.directory).path)")
        }
        let directory = assets.appendingPathComponent(MovieSnippets.name)
        let counts = try MovieSnippets.prepare(rawFile: MovieSnippets.rawFile(inAssets: assets), directory: directory)
        done("\(MovieSnippets.name): \(counts) in \(directory.path)")
    }
}

import Foundation
import XCTest

/// What every CLI test needs: where the built `cofi` is and where the fetched assets are.
extension XCTestCase {
    /// The directory of the built products (the `cofi` executable lies there).
    var productsDirectory: URL {
        #if os(macOS)
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            return bundle.bundleURL.deletingLastPathComponent()
        }
        fatalError("couldn't find the products directory")
        #else
        return Bundle.main.bundleURL
        #endif
    }

    /// `$COFI_ASSETS`, else the repository's `.assets` (filled by scripts/fetch-assets.sh).
    var assetsDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["COFI_ASSETS"] { return URL(fileURLWithPath: dir) }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".assets")
    }

    /// The real all-MiniLM-L6-v2 model directory.
    var miniLM: URL { assetsDirectory.appendingPathComponent("all-MiniLM-L6-v2") }
}

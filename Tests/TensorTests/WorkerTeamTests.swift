import Foundation
import XCTest
@testable import Tensor

/// The engine's fork-join team: every chunk runs exactly once per job, jobs follow each other with and without
/// the helpers asleep in between, more threads than cores (no spinning) work too, and shutdown joins the helpers.
final class WorkerTeamTests: XCTestCase {
    func runJobs(_ team: WorkerTeam, jobs: Int, pause: Double, file: StaticString = #filePath, line: UInt = #line) {
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 300)
        defer { counts.deallocate() }
        let shared = SharedPointer(counts)
        for j in 0..<jobs {
            let chunks = [1, 2, 3, 7, 64, 300][j % 6]
            counts.initialize(repeating: 0, count: chunks)
            team.run(chunks: chunks) { c in shared.base[c] += 1 }
            let wrong = (0..<chunks).filter { counts[$0] != 1 }
            XCTAssertTrue(wrong.isEmpty, "job \(j): chunks \(wrong) ran \(wrong.map { counts[$0] }) times", file: file, line: line)
            if pause > 0 { Thread.sleep(forTimeInterval: pause) }
        }
    }

    func testEveryChunkRunsOnceBackToBackAndAfterSleeping() {
        for threads in [1, 2, 3, 5] {
            let team = WorkerTeam(threads: threads)
            runJobs(team, jobs: 600, pause: 0)
            runJobs(team, jobs: 12, pause: 0.003)  // longer than the spin: the helpers sleep in between
            team.shutdown()
        }
    }

    func testWorkIsShared() {
        // With chunks that take a while (40 × 5 ms: a helper woken from its semaphore has 0.2 s to claim one, even
        // on a busy machine), a 2-thread team runs some on its helper.
        let team = WorkerTeam(threads: 2)
        defer { team.shutdown() }
        let caller = Thread.current
        let chunks = 40
        let others = UnsafeMutablePointer<Int>.allocate(capacity: chunks)
        defer { others.deallocate() }
        others.initialize(repeating: 0, count: chunks)
        let shared = SharedPointer(others)
        team.run(chunks: chunks) { c in
            Thread.sleep(forTimeInterval: 0.005)
            if Thread.current != caller { shared.base[c] = 1 }
        }
        XCTAssertGreaterThan((0..<chunks).reduce(0) { $0 + others[$1] }, 0, "the helper ran no chunk")
    }
}

import Tensor
import XCTest
import Tensor
@testable import CoFi

/// Hard-concrete gates (cofi-spec §2): constants, P(z ≠ 0) against Monte Carlo, the sampling op's gradient
/// against finite differences, and the deterministic mask's rules.
final class HardConcreteTests: XCTestCase {
    func testConstants() {
        XCTAssertEqual(HardConcrete.zeroLogit, -Float(2.0 / 3.0 * log(11.0)), accuracy: 1e-6)
        XCTAssertEqual(HardConcrete.zeroLogit, -1.5986, accuracy: 1e-4)
        XCTAssertEqual(HardConcrete.logAlphaRange.lowerBound, -4.60517, accuracy: 1e-5)
        XCTAssertEqual(HardConcrete.logAlphaRange.upperBound, 4.60517, accuracy: 1e-5)
        // P(z≠0) = sigmoid(log α + β·ln 11): 0.832 at 0; the clamp bounds it to [0.047, 0.998].
        XCTAssertEqual(HardConcrete.keepProbability(0), 0.8318, accuracy: 1e-4)
        XCTAssertEqual(HardConcrete.keepProbability(HardConcrete.logAlphaRange.upperBound), 0.99798, accuracy: 1e-5)
        XCTAssertEqual(HardConcrete.keepProbability(HardConcrete.logAlphaRange.lowerBound), 0.04713, accuracy: 1e-5)
        XCTAssertEqual(HardConcrete.keepProbability(HardConcrete.zeroLogit), 0.5)
        // CDF(0) is clamped to [ε, 1 − ε].
        XCTAssertEqual(HardConcrete.keepProbability(40), 1 - 1e-6, accuracy: 1e-7)
        XCTAssertEqual(HardConcrete.keepProbability(-40), 1e-6, accuracy: 1e-7)
        // Deterministic soft value sigmoid(1.2·log α): 0.996 at the upper clamp, 0.5 at 0.
        XCTAssertEqual(HardConcrete.softValue(HardConcrete.logAlphaRange.upperBound), 0.99603, accuracy: 1e-5)
        XCTAssertEqual(HardConcrete.softValue(0), 0.5)
    }

    func testNoiseStaysInsideOpenInterval() {
        var rng = Xoshiro256(seed: 3)
        let u = HardConcrete.noise(count: 100_000, using: &rng)
        XCTAssertGreaterThanOrEqual(u.min()!, HardConcrete.epsilon)
        XCTAssertLessThanOrEqual(u.max()!, 1 - HardConcrete.epsilon)
        XCTAssertEqual(u.reduce(0.0) { $0 + Double($1) } / Double(u.count), 0.5, accuracy: 0.005)
    }

    /// 20,000 samples per log α: the frequency of z ≠ 0 (and of z = 1) agrees with the closed form within 3σ.
    func testMonteCarloAgreesWithKeepProbability() {
        let n = 20_000
        var rng = Xoshiro256(seed: 57)
        var worst = 0.0
        for a: Float in [-4.6, -3, -1.5986, -1, 0, 0.5, 1, 2, 4.6] {
            let la = Variable(Tensor(repeating: a, shape: [n]))
            let z = HardConcrete.sample(logAlpha: la, noise: HardConcrete.noise(count: n, using: &rng)).value.scalars
            let nonZero = Double(z.filter { $0 != 0 }.count) / Double(n)
            let one = Double(z.filter { $0 == 1 }.count) / Double(n)
            let p = Double(HardConcrete.keepProbability(a))
            // P(z = 1) = P(s ≥ 11/12) = sigmoid(log α − β·ln 11).
            let p1 = 1 / (1 + exp(-(Double(a) + Double(HardConcrete.zeroLogit))))
            let sigma = (p * (1 - p) / Double(n)).squareRoot(), sigma1 = (p1 * (1 - p1) / Double(n)).squareRoot()
            print(String(format: "MC log α %+7.4f: P(z≠0) %.4f, freq %.4f (%+.2fσ); P(z=1) %.4f, freq %.4f (%+.2fσ)",
                         a, p, nonZero, (nonZero - p) / sigma, p1, one, (one - p1) / sigma1))
            XCTAssertLessThan(abs(nonZero - p), 3 * sigma, "log α \(a)")
            XCTAssertLessThan(abs(one - p1), 3 * sigma1, "log α \(a)")
            XCTAssertTrue(z.allSatisfy { $0 >= 0 && $0 <= 1 })
            worst = maxError([worst, absDifference(nonZero, p) / sigma])
        }
        print("MC worst |freq − P(z≠0)| = \(String(format: "%.2f", worst))σ")
    }

    /// Away from the clamp the sample's gradient in log α matches finite differences; where the clamp is active
    /// it is exactly 0.
    func testSampleGradient() {
        var rng = Xoshiro256(seed: 11)
        let n = 16
        let la = Variable(Tensor.randomNormal(shape: [n], std: 2, using: &rng), requiresGrad: true)
        // Choose u so that (ln u − ln(1−u) + log α)/β ∈ [−1.5, 1.5]: s̄ stays inside (0.1, 0.9) under ±0.01.
        let u = la.value.scalars.map { a -> Float in
            let x = -1.5 + 3 * rng.nextUniform()
            return HardConcrete.sigmoid(HardConcrete.temperature * x - a)
        }
        let err = GateTestSupport.checkGradients("hard-concrete sample", inputs: [la], tolerance: 2e-3) {
            HardConcrete.sample(logAlpha: la, noise: u)
        }
        XCTAssertLessThan(err, 2e-3)

        let clamped = Variable(Tensor(shape: [2], scalars: [-4, 4]), requiresGrad: true)
        let z = HardConcrete.sample(logAlpha: clamped, noise: [0.5, 0.5])
        XCTAssertEqual(z.value.scalars, [0, 1])
        z.sum().backward()
        XCTAssertEqual(clamped.grad?.scalars, [0, 0])
    }

    func testKeepProbabilityGradient() {
        var rng = Xoshiro256(seed: 12)
        let la = Variable(Tensor.randomNormal(shape: [12], std: 2.5, using: &rng), requiresGrad: true)
        GateTestSupport.checkGradients("P(z≠0)", inputs: [la], tolerance: 2e-3) { HardConcrete.keepProbability(la) }
        // No gradient where CDF(0) is clamped.
        let far = Variable(Tensor(shape: [2], scalars: [40, -40]), requiresGrad: true)
        HardConcrete.keepProbability(far).sum().backward()
        XCTAssertEqual(far.grad?.scalars, [0, 0])
    }

    // MARK: Deterministic mask

    func testDeterministicMaskZeroesSmallestAndKeepsSoftValues() {
        let la: [Float] = [4, -2, 0.5, -4, 3]
        // Σ P(z≠0) = 0.9963 + 0.4013 + 0.8909 + 0.0832 + 0.9899 = 3.3616 → 1.638 expected zeros → 2.
        XCTAssertEqual(HardConcrete.deterministicZeroCount(logAlpha: la), 2)
        let z = HardConcrete.deterministicMask(logAlpha: Tensor(shape: [5], scalars: la)).scalars
        XCTAssertEqual(z[1], 0)
        XCTAssertEqual(z[3], 0)
        for i in [0, 2, 4] { XCTAssertEqual(z[i], 1 / (1 + exp(-1.2 * la[i])), accuracy: 1e-6) }
        let binary = HardConcrete.deterministicMask(logAlpha: Tensor(shape: [5], scalars: la), binary: true).scalars
        XCTAssertEqual(binary, [1, 0, 1, 0, 1])
    }

    /// At log α = β·ln(1/11) every P(z≠0) is exactly 0.5, so expected zeros are exact halves: round half to even.
    func testRoundHalfToEvenAndStableTies() {
        let half = HardConcrete.zeroLogit
        // 5 gates: 2.5 expected zeros → 2; all soft values tie → the lowest indices go first.
        let five = HardConcrete.deterministicMask(logAlpha: Tensor(repeating: half, shape: [5])).scalars
        XCTAssertEqual(HardConcrete.deterministicZeroCount(logAlpha: Array(repeating: half, count: 5)), 2)
        XCTAssertEqual(five.map { $0 == 0 }, [true, true, false, false, false])
        XCTAssertEqual(five[4], HardConcrete.softValue(half))
        // 3 gates: 1.5 → 2; 7 gates: 3.5 → 4; 1 gate: 0.5 → 0 (the gate stays).
        XCTAssertEqual(HardConcrete.deterministicZeroCount(logAlpha: Array(repeating: half, count: 3)), 2)
        XCTAssertEqual(HardConcrete.deterministicZeroCount(logAlpha: Array(repeating: half, count: 7)), 4)
        XCTAssertEqual(HardConcrete.deterministicZeroCount(logAlpha: [half]), 0)
        // Three equal smallest values, two zeros: Σ P ≈ .9734 + .1976·3 + .9909 + .9963 = 3.553 → 2.447 → 2;
        // of the tied gates 1, 3 and 4 the lower indices 1 and 3 go.
        let la: [Float] = [2, -3, 3, -3, -3, 4]
        XCTAssertEqual(HardConcrete.deterministicZeroCount(logAlpha: la), 2)
        let z = HardConcrete.deterministicMask(logAlpha: Tensor(shape: [6], scalars: la)).scalars
        XCTAssertEqual(z.enumerated().filter { $0.element == 0 }.map(\.offset), [1, 3])
        XCTAssertEqual(z[4], HardConcrete.softValue(-3))
    }

    /// Layer gates (size 1): 0 iff P(z=0) > 0.5, i.e. log α < β·ln(1/11) = −1.5986; otherwise the soft value.
    func testScalarLayerGateRule() {
        func gate(_ a: Float) -> Float { HardConcrete.deterministicMask(logAlpha: Tensor(shape: [1], scalars: [a])).scalars[0] }
        XCTAssertEqual(gate(-1.7), 0)                                 // P(z=0) = 0.525
        XCTAssertEqual(gate(-1.5), 1 / (1 + exp(1.8)), accuracy: 1e-6) // P(z=0) = 0.475 → soft 0.142
        XCTAssertEqual(gate(HardConcrete.zeroLogit), HardConcrete.softValue(HardConcrete.zeroLogit)) // 0.5 → kept
        XCTAssertEqual(gate(4.60517), 0.99603, accuracy: 1e-5)
        XCTAssertEqual(gate(-4.60517), 0)
    }
}

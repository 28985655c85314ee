import Tensor
import XCTest
@testable import Training

/// AdamW, schedules and clipping against hand-computed values (the PyTorch parity test covers them together).
final class OptimizerTests: XCTestCase {
    func testAdamWFirstStepsMatchTheFormula() {
        let p = Variable(Tensor(shape: [2], scalars: [1, -2]), requiresGrad: true)
        let opt = AdamW(groups: [ParameterGroup(name: "g", parameters: [("p", p)], learningRate: 0.1, weightDecay: 0.01)])
        var w: [Double] = [1, -2], m: [Double] = [0, 0], v: [Double] = [0, 0]
        let grads: [[Float]] = [[0.5, -1], [0.25, 2], [-3, 0.1]]
        for (t, g) in grads.enumerated() {
            p.grad = Tensor(shape: [2], scalars: g)
            opt.step()
            let step = Double(t + 1)
            for i in 0..<2 {
                w[i] *= 1 - 0.1 * 0.01
                m[i] = 0.9 * m[i] + 0.1 * Double(g[i])
                v[i] = 0.999 * v[i] + 0.001 * Double(g[i]) * Double(g[i])
                let mh = m[i] / (1 - pow(0.9, step)), denom = (v[i] / (1 - pow(0.999, step))).squareRoot() + 1e-8
                w[i] -= 0.1 * mh / denom
                XCTAssertEqual(Double(p.value.scalars[i]), w[i], accuracy: 1e-6, "step \(t + 1) element \(i)")
            }
        }
        XCTAssertEqual(opt.stepCount, 3)
    }

    func testNegativeLearningRateAscends() {
        let lambda = Variable(Tensor(shape: [1], scalars: [0]), requiresGrad: true)
        let opt = AdamW(groups: [ParameterGroup(name: "lambda", parameters: [("l", lambda)], learningRate: -0.01,
                                               followsSchedule: false)])
        lambda.grad = Tensor(shape: [1], scalars: [0.3])
        opt.step(scheduleMultiplier: 0)  // the schedule does not reach this group
        XCTAssertEqual(lambda.value.scalars[0], 0.01, accuracy: 1e-6)
    }

    func testLinearScheduleMatchesHuggingFace() {
        let s = LearningRateSchedule.linear(warmupSteps: 2, totalSteps: 10)
        XCTAssertEqual([0, 1, 2, 6, 10, 11].map { s.multiplier(atStep: $0) }, [0, 0.5, 1, 0.5, 0, 0])
        XCTAssertEqual(LearningRateSchedule.linear(warmupSteps: 0, totalSteps: 4).multiplier(atStep: 1), 0.75)
        XCTAssertEqual(LearningRateSchedule.constant.multiplier(atStep: 99), 1)
    }

    func testClippingScalesToMaxNorm() {
        let a = Variable(Tensor(zeros: [2]), requiresGrad: true), b = Variable(Tensor(zeros: [1]), requiresGrad: true)
        a.grad = Tensor(shape: [2], scalars: [3, 0])
        b.grad = Tensor(shape: [1], scalars: [4])
        let norm = clipGradientNorm([a, b], maxNorm: 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-6)
        XCTAssertEqual(a.grad!.scalars[0], 0.6, accuracy: 1e-6)
        XCTAssertEqual(b.grad!.scalars[0], 0.8, accuracy: 1e-6)
        let small = clipGradientNorm([a, b], maxNorm: 10)
        XCTAssertEqual(small, 1, accuracy: 1e-5)
        XCTAssertEqual(b.grad!.scalars[0], 0.8, accuracy: 1e-6, "no scaling below the limit")
    }

    func testStateRoundTripContinuesIdentically() throws {
        func run(split: Bool) throws -> [Float] {
            let p = Variable(Tensor(shape: [3], scalars: [0.1, 0.2, 0.3]), requiresGrad: true)
            var opt = AdamW(groups: [ParameterGroup(name: "g", parameters: [("p", p)], learningRate: 0.05, weightDecay: 0.1)])
            for k in 0..<6 {
                if split && k == 3 {
                    let saved = opt.state
                    opt = AdamW(groups: [ParameterGroup(name: "g", parameters: [("p", p)], learningRate: 0.05, weightDecay: 0.1)])
                    try opt.load(state: saved)
                }
                p.grad = Tensor(shape: [3], scalars: [Float(k) - 2, 1, Float(k) * 0.5])
                opt.step()
            }
            return p.value.scalars
        }
        XCTAssertEqual(try run(split: true), try run(split: false))
    }

    func testStandardGroupsExcludeBiasAndLayerNorm() {
        let params = ["a.weight", "a.bias", "LayerNorm.weight", "x.LayerNorm.bias"].map { ($0, Variable(Tensor(zeros: [1]), requiresGrad: true)) }
        let groups = ParameterGroup.standard(params, learningRate: 1, weightDecay: 0.01)
        XCTAssertEqual(groups[0].parameters.map(\.0), ["a.weight"])
        XCTAssertEqual(groups[1].parameters.map(\.0), ["a.bias", "LayerNorm.weight", "x.LayerNorm.bias"])
    }
}

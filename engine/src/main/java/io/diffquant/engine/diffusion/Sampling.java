package io.diffquant.engine.diffusion;

import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/** Entry points that run a request with its own sampler (ADM's *_sample_loop). */
public final class Sampling {
    private Sampling() {}

    /** {@code request.sampler().start(request)}. */
    public static SamplingRun start(SampleRequest request) {
        return request.sampler().start(request);
    }

    /** Runs every step and keeps x after each step. */
    public static SamplingResult runToEnd(SampleRequest request) { return runToEnd(request, true); }

    /** Runs every step; keeps x after each step only when {@code keepTrajectory}. */
    public static SamplingResult runToEnd(SampleRequest request, boolean keepTrajectory) {
        SamplingRun run = start(request);
        List<Tensor> xs = new ArrayList<>();
        while (run.hasNext()) {
            SamplingStep s = run.next();
            if (keepTrajectory) xs.add(s.x());
        }
        return new SamplingResult(run.initialNoise(), run.current(), run.timestepsInOrder(), xs, run.execution());
    }
}

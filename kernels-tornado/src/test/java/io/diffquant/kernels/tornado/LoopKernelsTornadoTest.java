package io.diffquant.kernels.tornado;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;

import java.util.List;

/** The kernel suite with the @Parallel loop kernels compiled by TornadoVM for its default device (PoCL's CPU device here). */
class LoopKernelsTornadoTest extends KernelContract {
    private final KernelRunner runner = new TornadoRunner(false);

    @BeforeAll
    static void needTornado() {
        String why = TornadoRunner.unavailableReason();
        Assumptions.assumeTrue(why == null, why);
    }

    @Override KernelRunner runner() { return runner; }

    /** W4A8 (int4-asym group 16, dynamic per-token int8) blocks; NVFP4 denoiser with chained block graphs. */
    @Override List<Integer> blockPlanChoice() { return List.of(1); }

    @Override List<Integer> denoiserPlanChoice() { return List.of(2); }
}

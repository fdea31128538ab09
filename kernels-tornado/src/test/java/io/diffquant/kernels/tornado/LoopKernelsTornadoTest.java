package io.diffquant.kernels.tornado;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;

/** The kernel suite with the @Parallel loop kernels compiled by TornadoVM for its default device (PoCL's CPU device here). */
class LoopKernelsTornadoTest extends KernelContract {
    private final KernelRunner runner = new TornadoRunner(false);

    @BeforeAll
    static void needTornado() {
        String why = TornadoRunner.unavailableReason();
        Assumptions.assumeTrue(why == null, why);
    }

    @Override KernelRunner runner() { return runner; }
}

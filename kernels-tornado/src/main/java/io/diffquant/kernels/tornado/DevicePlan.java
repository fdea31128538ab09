package io.diffquant.kernels.tornado;

import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.ImmutableTaskGraph;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.enums.TornadoVMBackendType;

import java.util.List;

/**
 * A TornadoVM execution plan over the task graphs of a chain of DiT blocks (one graph per block, TornadoVM's
 * multi-graph TornadoExecutionPlan): {@link #run()} executes them in order. Chained blocks hand the hidden tokens to the
 * next graph on the device (persistOnDevice / consumeFromDevice); otherwise every block copies them in and out.
 * Loaded only when TornadoVM is present (TornadoExecutionPlan's class initialisation starts the TornadoVM runtime).
 */
public final class DevicePlan implements AutoCloseable {
    private final TornadoExecutionPlan root;
    private final TornadoExecutionPlan plan;
    private final int graphs;

    public DevicePlan(List<DitBlock> blocks, DeviceSettings s) {
        if (blocks.isEmpty()) throw new IllegalArgumentException("a device plan needs at least one block");
        GridScheduler gs = new GridScheduler();
        ImmutableTaskGraph[] itg = new ImmutableTaskGraph[blocks.size()];
        for (int i = 0; i < itg.length; i++) {
            DeviceGraphs.Hidden hidden;
            if (!s.chained() || itg.length == 1) hidden = DeviceGraphs.Hidden.HOST_ROUND_TRIP;
            else if (i == 0) hidden = DeviceGraphs.Hidden.IN_PERSIST;
            else if (i == itg.length - 1) hidden = DeviceGraphs.Hidden.CONSUME_OUT;
            else hidden = DeviceGraphs.Hidden.CONSUME_PERSIST;
            TaskGraph tg = DeviceGraphs.block(blocks.get(i), gs, s.tuned(), hidden, i == 0 ? null : blocks.get(i - 1).name());
            itg[i] = tg.snapshot();
        }
        root = new TornadoExecutionPlan(itg);
        TornadoExecutionPlan p = root.withCompilerFlags(TornadoVMBackendType.OPENCL, s.compilerFlags());
        if (!gs.keySet().isEmpty()) p = p.withGridScheduler(gs);
        plan = p;
        graphs = itg.length;
    }

    /** Executes every block graph in order. */
    public void run() {
        for (int i = 0; i < graphs; i++) plan.withGraph(i).execute();
    }

    /** Executes the graph of block i alone (only meaningful when the plan is not chained). */
    public void run(int i) {
        if (i < 0 || i >= graphs) throw new IndexOutOfBoundsException("block graph " + i + " of " + graphs);
        plan.withGraph(i).execute();
    }

    public int graphs() { return graphs; }

    @Override public void close() {
        try {
            root.close();
        } catch (Exception e) {
            throw new IllegalStateException("freeing the TornadoVM device memory failed: " + e.getMessage(), e);
        }
    }
}

package io.diffquant.kernels.tornado;

import io.diffquant.engine.model.Denoiser;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.QuantizedModel;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.enums.TornadoVMBackendType;
import uk.ac.manchester.tornado.api.runtime.TornadoRuntimeProvider;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;

import java.util.List;
import java.util.function.BiConsumer;

/**
 * Runs each kernel as a one-task (or one-layer) TornadoVM task graph on the default device: all arguments copied in,
 * the outputs copied back, compiled with {@link DeviceSettings#EXACT_FLAGS}. With {@code tuned}, the KernelContext kernels.
 */
final class TornadoRunner implements KernelRunner {
    private final boolean tuned;
    private static int counter;

    TornadoRunner(boolean tuned) { this.tuned = tuned; }

    /** The default TornadoVM device, or a reason why there is none (for the skip message). */
    static String deviceOrReason() {
        try {
            return "TornadoVM " + TornadoRuntimeProvider.getTornadoRuntime().getDefaultDevice().getPhysicalDevice().getDeviceName();
        } catch (Throwable t) {
            return null;
        }
    }

    static String unavailableReason() {
        try {
            TornadoRuntimeProvider.getTornadoRuntime().getDefaultDevice();
            return null;
        } catch (Throwable t) {
            return "TornadoVM runtime not available (run with TORNADOVM_HOME set and the SDK's tornado-argfile): " + t;
        }
    }

    @Override public String describe() {
        return "TornadoVM " + (tuned ? "tuned" : "loop") + " kernels on " + deviceOrReason();
    }

    private static synchronized String fresh() { return "g" + (counter++); }

    /** Builds a graph with the given inputs and outputs, lets body add tasks, executes it once. */
    private void run(Object[] in, Object[] out, BiConsumer<TaskGraph, GridScheduler> body) {
        TaskGraph tg = new TaskGraph(fresh());
        tg.transferToDevice(DataTransferMode.FIRST_EXECUTION, in);
        GridScheduler gs = new GridScheduler();
        body.accept(tg, gs);
        tg.transferToHost(DataTransferMode.EVERY_EXECUTION, out);
        try (TornadoExecutionPlan plan = new TornadoExecutionPlan(tg.snapshot())) {
            TornadoExecutionPlan p = plan.withCompilerFlags(TornadoVMBackendType.OPENCL, DeviceSettings.EXACT_FLAGS);
            if (!gs.keySet().isEmpty()) p = p.withGridScheduler(gs);
            p.execute();
        } catch (Exception e) {
            throw new IllegalStateException("TornadoVM execution failed: " + e, e);
        }
    }

    @Override public void quantizePerToken(FloatArray x, Int8Array q, FloatArray s, int rows, int cols, int qmax) {
        run(new Object[] {x, q, s}, new Object[] {q, s}, (tg, gs) -> {
            if (tuned) {
                tg.task("t", TunedKernels::quantizeInt8PerToken, new KernelContext(), x, q, s, rows, cols, qmax);
                gs.addWorkerGrid(tg.getTaskGraphName() + ".t", DeviceGraphs.groupsGrid(rows));
            } else {
                tg.task("t", LoopKernels::quantizeInt8PerToken, x, q, s, rows, cols, qmax);
            }
        });
    }

    @Override public void quantizeStatic(FloatArray x, Int8Array q, FloatArray s, float d, int qmin, int qmax, int rows, int cols) {
        run(new Object[] {x, q, s}, new Object[] {q, s}, (tg, gs) -> tg.task("t", LoopKernels::quantizeInt8Static, x, q, s, d, qmin, qmax, rows, cols));
    }

    @Override public void linear(PackedLinear l, FloatArray x, FloatArray y, int rows, Int8Array xq, FloatArray sx) {
        List<Object> in = new java.util.ArrayList<>(DeviceGraphs.weightArrays(l));
        in.addAll(List.of(x, y, xq, sx));
        run(in.toArray(), new Object[] {y}, (tg, gs) -> DeviceGraphs.linear(tg, gs, "l", l, x, y, rows, xq, sx, tuned));
    }

    @Override public void layerNormModulate(FloatArray x, FloatArray mod, FloatArray y, int rows, int tokens, int d, int chunks, int shift,
                                            int scale, float eps) {
        run(new Object[] {x, mod, y}, new Object[] {y}, (tg, gs) -> {
            if (tuned) {
                tg.task("t", TunedKernels::layerNormModulate, new KernelContext(), x, mod, y, rows, tokens, d, chunks, shift, scale, eps);
                gs.addWorkerGrid(tg.getTaskGraphName() + ".t", DeviceGraphs.groupsGrid(rows));
            } else {
                tg.task("t", LoopKernels::layerNormModulate, x, mod, y, rows, tokens, d, chunks, shift, scale, eps);
            }
        });
    }

    @Override public void gatedResidual(FloatArray x, FloatArray y, FloatArray mod, int rows, int tokens, int d, int chunks, int gate) {
        run(new Object[] {x, y, mod}, new Object[] {x}, (tg, gs) -> tg.task("t", LoopKernels::gatedResidual, x, y, mod, rows, tokens, d, chunks, gate));
    }

    @Override public void gelu(FloatArray x, int n) {
        run(new Object[] {x}, new Object[] {x}, (tg, gs) -> tg.task("t", LoopKernels::geluTanh, x, n));
    }

    @Override public void silu(FloatArray x, FloatArray y, int n) {
        run(new Object[] {x, y}, new Object[] {y}, (tg, gs) -> tg.task("t", LoopKernels::silu, x, y, n));
    }

    @Override public void attention(FloatArray qkv, FloatArray out, int batch, int tokens, int heads, int hd, float scale) {
        if (tuned && TunedKernels.attentionOk(tokens, hd)) {
            run(new Object[] {qkv, out}, new Object[] {out}, (tg, gs) -> {
                tg.task("t", TunedKernels::attention, new KernelContext(), qkv, out, batch, tokens, heads, hd, scale);
                gs.addWorkerGrid(tg.getTaskGraphName() + ".t", DeviceGraphs.groupsGrid(batch * heads * tokens));
            });
        } else {
            FloatArray scores = new FloatArray(batch * heads * tokens * tokens);
            run(new Object[] {qkv, scores, out}, new Object[] {out},
                    (tg, gs) -> tg.task("t", LoopKernels::attention, qkv, scores, out, batch, tokens, heads, hd, scale));
        }
    }

    @Override public void im2col(FloatArray x, FloatArray cols, int n, int c, int h, int w, int kh, int kw, int pad, int s, int oh, int ow) {
        run(new Object[] {x, cols}, new Object[] {cols}, (tg, gs) -> tg.task("t", LoopKernels::im2col, x, cols, n, c, h, w, kh, kw, pad, s, oh, ow));
    }

    @Override public void rowsToNchw(FloatArray y, FloatArray out, int n, int co, int oh, int ow) {
        run(new Object[] {y, out}, new Object[] {out}, (tg, gs) -> tg.task("t", LoopKernels::rowsToNchw, y, out, n, co, oh, ow));
    }

    @Override public void block(DitBlock b) {
        try (DevicePlan p = new DevicePlan(List.of(b), new DeviceSettings(tuned, false, DeviceSettings.EXACT_FLAGS))) {
            p.run();
        }
    }

    @Override public Denoiser dit(DiT model, QuantizedModel q) {
        return TornadoDiT.create(model, q, TornadoDiT.Target.DEVICE, new DeviceSettings(tuned, true, DeviceSettings.EXACT_FLAGS));
    }
}

package io.diffquant.kernels.tornado;

import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.WorkerGrid;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.WorkerGrid2D;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;

import java.util.ArrayList;
import java.util.List;

/**
 * TornadoVM task graphs (TornadoVM's TaskGraph / GridScheduler API) for the kernels: one layer, or one whole DiT block
 * whose weights are transferred once ({@code FIRST_EXECUTION}) and stay resident, whose intermediate activations are
 * produced and consumed on the device, and whose hidden tokens go in and out per execution (or stay on the device between
 * chained blocks). With {@code tuned} the KernelContext kernels of {@link TunedKernels} run where their shape limits
 * allow, with launch geometry registered in the {@link GridScheduler}; otherwise the @Parallel loop kernels.
 */
public final class DeviceGraphs {
    private DeviceGraphs() {}

    /** How the hidden tokens of a block graph reach and leave the device. */
    public enum Hidden {
        /** copied in and out at every execution. */
        HOST_ROUND_TRIP,
        /** copied in at every execution, kept on the device for the next graph (first block of a chain). */
        IN_PERSIST,
        /** taken from the previous graph's device buffer and kept for the next (middle blocks). */
        CONSUME_PERSIST,
        /** taken from the previous graph, copied out at every execution (last block). */
        CONSUME_OUT
    }

    private static int roundUp(int v, int m) { return (v + m - 1) / m * m; }

    static WorkerGrid gemmGrid(int rows, int out) {
        WorkerGrid2D g = new WorkerGrid2D(roundUp(out, TunedKernels.TS), roundUp(rows, TunedKernels.TS));
        g.setLocalWork(TunedKernels.TS, TunedKernels.TS, 1);
        return g;
    }

    static WorkerGrid groupsGrid(int groups) {
        WorkerGrid1D g = new WorkerGrid1D(groups * TunedKernels.WG);
        g.setLocalWork(TunedKernels.WG, 1, 1);
        return g;
    }

    /** Whether the tuned GEMM handles this layer. */
    static boolean tunedGemm(PackedLinear l) {
        return TunedKernels.tiledGroupOk(l.group(), l.in());
    }

    /** The arrays of a layer that must be on the device (weights resident). */
    static List<Object> weightArrays(PackedLinear l) {
        return List.of(l.wf, l.wq, l.ws, l.wz, l.lut, l.bias);
    }

    /**
     * Adds the tasks of one layer: y[rows, out] = layer(x[rows, in]), integer layers quantizing x into xq / sx first.
     * Task ids are prefix + "_q" (quantization) and prefix (GEMM).
     */
    public static void linear(TaskGraph tg, GridScheduler gs, String prefix, PackedLinear l, FloatArray x, FloatArray y, int rows,
                              Int8Array xq, FloatArray sx, boolean tuned) {
        Gemm.check(l, x, y, rows, xq, sx);
        String g = tg.getTaskGraphName() + ".";
        int in = l.in(), out = l.out(), group = l.group(), asym = l.asymmetric() ? 1 : 0;
        boolean tg2 = tuned && tunedGemm(l);
        if (l.kind() == PackedLinear.Kind.W8A8 || l.kind() == PackedLinear.Kind.W4A8) {
            String qid = prefix + "_q";
            if (l.activationMode() == PackedLinear.ActMode.DYNAMIC_TOKEN) {
                if (tuned) {
                    tg.task(qid, TunedKernels::quantizeInt8PerToken, new KernelContext(), x, xq, sx, rows, in, l.activationQmax());
                    gs.addWorkerGrid(g + qid, groupsGrid(rows));
                } else {
                    tg.task(qid, LoopKernels::quantizeInt8PerToken, x, xq, sx, rows, in, l.activationQmax());
                }
            } else {
                tg.task(qid, LoopKernels::quantizeInt8Static, x, xq, sx, l.activationScale(), l.activationQmin(), l.activationQmax(), rows, in);
            }
        }
        switch (l.kind()) {
            case F32 -> {
                if (tg2) tg.task(prefix, TunedKernels::gemmF32, new KernelContext(), x, l.wf, l.bias, y, rows, in, out);
                else tg.task(prefix, LoopKernels::gemmF32, x, l.wf, l.bias, y, rows, in, out);
            }
            case W8A8 -> {
                if (tg2) tg.task(prefix, TunedKernels::gemmW8A8, new KernelContext(), xq, sx, l.wq, l.ws, l.wz, l.bias, y, rows, in, out, group, asym);
                else tg.task(prefix, LoopKernels::gemmW8A8, xq, sx, l.wq, l.ws, l.wz, l.bias, y, rows, in, out, group, asym);
            }
            case W4A8 -> {
                if (tg2) tg.task(prefix, TunedKernels::gemmW4A8, new KernelContext(), xq, sx, l.wq, l.ws, l.wz, l.bias, y, rows, in, out, group, asym);
                else tg.task(prefix, LoopKernels::gemmW4A8, xq, sx, l.wq, l.ws, l.wz, l.bias, y, rows, in, out, group, asym);
            }
            case FP4_LUT -> {
                if (tg2) tg.task(prefix, TunedKernels::gemmFp4Lut, new KernelContext(), x, l.wq, l.lut, l.ws, l.bias, y, rows, in, out, group);
                else tg.task(prefix, LoopKernels::gemmFp4Lut, x, l.wq, l.lut, l.ws, l.bias, y, rows, in, out, group);
            }
        }
        if (tg2) gs.addWorkerGrid(g + prefix, gemmGrid(rows, out));
    }

    /**
     * The task graph of one DiT block. Weights and scratch buffers are transferred at the first execution only; silu(c) at
     * every execution; the hidden tokens as {@code hidden} says (chained blocks pass them on the device with
     * persistOnDevice / consumeFromDevice, {@code previous} naming the graph that persisted them).
     */
    public static TaskGraph block(DitBlock b, GridScheduler gs, boolean tuned, Hidden hidden, String previous) {
        TaskGraph tg = new TaskGraph(b.name);
        List<Object> once = new ArrayList<>();
        for (PackedLinear l : new PackedLinear[] {b.adaLN, b.qkv, b.proj, b.fc1, b.fc2}) once.addAll(weightArrays(l));
        once.addAll(List.of(b.mod, b.h, b.qkvOut, b.att, b.attOut, b.f, b.fOut, b.xq, b.sx));
        boolean tunedAttention = tuned && TunedKernels.attentionOk(b.tokens, b.headDim);
        if (!tunedAttention) once.add(b.scores);
        tg.transferToDevice(DataTransferMode.FIRST_EXECUTION, once.toArray());
        tg.transferToDevice(DataTransferMode.EVERY_EXECUTION, b.cs);
        switch (hidden) {
            case HOST_ROUND_TRIP, IN_PERSIST -> tg.transferToDevice(DataTransferMode.EVERY_EXECUTION, b.x);
            default -> tg.consumeFromDevice(previous, b.x);
        }
        String g = b.name + ".";
        int rows = b.rows, d = b.hidden, t = b.tokens, c = DitBlock.CHUNKS;
        linear(tg, gs, "ada", b.adaLN, b.cs, b.mod, b.samples, b.xq, b.sx, tuned);
        if (tuned) {
            tg.task("ln1", TunedKernels::layerNormModulate, new KernelContext(), b.x, b.mod, b.h, rows, t, d, c, 0, 1, b.eps);
            gs.addWorkerGrid(g + "ln1", groupsGrid(rows));
        } else {
            tg.task("ln1", LoopKernels::layerNormModulate, b.x, b.mod, b.h, rows, t, d, c, 0, 1, b.eps);
        }
        linear(tg, gs, "qkv", b.qkv, b.h, b.qkvOut, rows, b.xq, b.sx, tuned);
        if (tunedAttention) {
            tg.task("attn", TunedKernels::attention, new KernelContext(), b.qkvOut, b.att, b.samples, t, b.heads, b.headDim, b.attnScale);
            gs.addWorkerGrid(g + "attn", groupsGrid(b.samples * b.heads * t));
        } else {
            tg.task("attn", LoopKernels::attention, b.qkvOut, b.scores, b.att, b.samples, t, b.heads, b.headDim, b.attnScale);
        }
        linear(tg, gs, "proj", b.proj, b.att, b.attOut, rows, b.xq, b.sx, tuned);
        tg.task("res1", LoopKernels::gatedResidual, b.x, b.attOut, b.mod, rows, t, d, c, 2);
        if (tuned) {
            tg.task("ln2", TunedKernels::layerNormModulate, new KernelContext(), b.x, b.mod, b.h, rows, t, d, c, 3, 4, b.eps);
            gs.addWorkerGrid(g + "ln2", groupsGrid(rows));
        } else {
            tg.task("ln2", LoopKernels::layerNormModulate, b.x, b.mod, b.h, rows, t, d, c, 3, 4, b.eps);
        }
        linear(tg, gs, "fc1", b.fc1, b.h, b.f, rows, b.xq, b.sx, tuned);
        tg.task("gelu", LoopKernels::geluTanh, b.f, rows * b.mlp);
        linear(tg, gs, "fc2", b.fc2, b.f, b.fOut, rows, b.xq, b.sx, tuned);
        tg.task("res2", LoopKernels::gatedResidual, b.x, b.fOut, b.mod, rows, t, d, c, 5);
        switch (hidden) {
            case HOST_ROUND_TRIP, CONSUME_OUT -> tg.transferToHost(DataTransferMode.EVERY_EXECUTION, b.x);
            default -> tg.persistOnDevice(b.x);
        }
        return tg;
    }
}

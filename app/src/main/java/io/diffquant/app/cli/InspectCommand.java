package io.diffquant.app.cli;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.MemoryBudget;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.Callable;

/** Lists layers, shapes, parameter counts, stored dtypes and temporal (TIB) layers. */
@Command(name = "inspect", mixinStandardHelpOptions = true, description = "Layers, shapes, parameter counts and dtypes of a model folder.")
final class InspectCommand implements Callable<Integer> {
    @Mixin ModelOption model;
    @Option(names = "--probes", description = "also list weightless activation points (attention q/k/v/softmax, skip concats)") boolean probes;

    @Override public Integer call() throws Exception {
        MemoryBudget.resetPeak();
        long t0 = System.nanoTime();
        ModelFolder.Loaded loaded = model.load();
        double loadSecs = (System.nanoTime() - t0) / 1e9;
        long peak = MemoryBudget.peakHeap();
        DiffusionModel m = loaded.model();
        System.out.printf("%s  %s%n", m.architecture(), loaded.folder());
        System.out.printf("in_channels %d, out_channels %d, sample_size %d, classes %d, learn_sigma %s%n",
                m.inChannels(), m.outChannels(), m.sampleSize(), m.numClasses(), m.learnSigma());
        System.out.printf("%-48s %-10s %-26s %12s  %-5s %s%n", "layer", "kind", "weight shape", "parameters", "dtype", "tags");
        int temporal = 0;
        for (Layer l : m.layers().all()) {
            if (l.params().isEmpty() && !probes) continue;
            Tensor w = l.params().isEmpty() ? null : l.params().values().iterator().next();
            String dtype = l.params().isEmpty() ? "-" : loaded.dtypes().getOrDefault(l.qualified(l.params().keySet().iterator().next()), "?");
            if ("true".equals(l.tags().get("temporal"))) temporal++;
            Map<String, String> tags = new java.util.LinkedHashMap<>(l.tags());
            tags.remove("block");
            System.out.printf("%-48s %-10s %-26s %12d  %-5s %s%n", l.name(), l.kind(),
                    w == null ? "-" : Arrays.toString(w.shape()), l.parameterCount(), dtype, tags.isEmpty() ? "" : tags);
        }
        long total = m.parameterCount();
        System.out.printf("%d layers (%d temporal), %,d parameters (%.2f M), %,d tensors in %s%n",
                m.layers().size(), temporal, total, total / 1e6, loaded.dtypes().size(), loaded.weightsFile().getFileName());
        System.out.printf("loaded in %.2f s (memory-mapped, copied tensor by tensor): FP32 weights %.1f MiB, heap used %.1f MiB, "
                + "peak heap while loading %.1f MiB, max heap %.0f MiB%n", loadSecs, 4.0 * total / 1048576, MemoryBudget.usedHeap() / 1048576.0,
                peak / 1048576.0, Runtime.getRuntime().maxMemory() / 1048576.0);
        return 0;
    }
}

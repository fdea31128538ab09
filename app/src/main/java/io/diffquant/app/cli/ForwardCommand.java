package io.diffquant.app.cli;

import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** One denoiser call on tensors read from a safetensors file: the door for comparing against PyTorch. */
@Command(name = "forward", mixinStandardHelpOptions = true,
        description = {"One denoiser call: reads x (N,C,H,W float32), t (N, int64 or float32) and y (N int64; absent for",
                "unconditional models) from --inputs and writes the model output as tensor 'out' (float32) to --out."})
final class ForwardCommand implements Callable<Integer> {
    @Mixin ModelOption model;
    @Option(names = "--inputs", required = true, paramLabel = "FILE", description = "safetensors file with x, t[, y]") Path inputs;
    @Option(names = "--out", required = true, paramLabel = "FILE", description = "safetensors file to write (tensor 'out')") Path out;

    @Override public Integer call() throws Exception {
        ModelFolder.Loaded loaded = model.load();
        DiffusionModel m = loaded.model();
        Tensor x;
        float[] t;
        int[] y = null;
        try (SafetensorsReader r = SafetensorsReader.open(inputs)) {
            for (String need : new String[] {"x", "t"})
                if (!r.contains(need)) throw new IllegalArgumentException(inputs + ": tensor '" + need + "' is missing (found " + r.names() + ")");
            x = r.readFloat("x");
            t = r.readFloat("t").data();
            if (r.contains("y")) y = r.readInts("y");
        }
        if (x.rank() != 4 || x.dim(1) != m.inChannels() || x.dim(2) != m.sampleSize() || x.dim(3) != m.sampleSize())
            throw new IllegalArgumentException(inputs + ": tensor 'x' has shape " + x + ", the model needs [N, "
                    + m.inChannels() + ", " + m.sampleSize() + ", " + m.sampleSize() + "]");
        if (t.length != x.dim(0)) throw new IllegalArgumentException(inputs + ": tensor 't' has " + t.length + " values for " + x.dim(0) + " images");
        if (m.numClasses() > 0 && y == null) throw new IllegalArgumentException(inputs + ": tensor 'y' is required: the model is class-conditional");
        if (m.numClasses() == 0 && y != null) throw new IllegalArgumentException(inputs + ": tensor 'y' given but the model is unconditional");
        if (y != null && y.length != x.dim(0)) throw new IllegalArgumentException(inputs + ": tensor 'y' has " + y.length + " values for " + x.dim(0) + " images");
        long t0 = System.nanoTime();
        Tensor o = m.forward(x, t, y);
        double ms = (System.nanoTime() - t0) / 1e6;
        new SafetensorsWriter().metadata("model", loaded.folder().toString()).add("out", o).write(out);
        System.out.printf("%s forward on %s: output %s in %.1f ms -> %s%n", m.architecture(), x, o, ms, out);
        return 0;
    }
}

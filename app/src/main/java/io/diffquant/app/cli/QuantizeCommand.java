package io.diffquant.app.cli;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.export.QuantizedCheckpoint;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** Writes the quantized checkpoint of a model and a config (docs/export-format.md). */
@Command(name = "quantize", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Apply a quantization config to a model and write the quantized checkpoint: packed codes, scales and",
                "zero points per group, the other tensors in FP32, the config in the metadata (docs/export-format.md)."})
final class QuantizeCommand implements Callable<Integer> {
    @Mixin ModelOption model;
    @Option(names = {"-c", "--config"}, required = true, paramLabel = "FILE", description = "quantization config (from calibrate)") Path config;
    @Option(names = {"-o", "--out"}, paramLabel = "FILE", description = "checkpoint to write (default: the config's name with .safetensors)") Path out;
    @Option(names = "--force", description = "apply the config even if it was calibrated for other weights") boolean force;

    @Override public Integer call() throws Exception {
        DiffusionModel m = model.load().model();
        QuantConfig c = QuantConfigCodec.read(config);
        QuantizedModel q = QuantConfigs.attach(c, m, force);
        Path target = out != null ? out : config.toAbsolutePath().resolveSibling(config.getFileName().toString().replaceFirst("\\.json$", "") + ".safetensors");
        QuantizedCheckpoint.Summary s = QuantizedCheckpoint.write(q, c, target);
        q.detach();
        System.out.printf("%d quantized weights: %.3f MB of codes, scales and zero points for %.3f MB in FP32 (%.1f %%); %.3f MB kept in FP32%n",
                s.quantizedTensors(), s.quantizedBytes() / 1e6, s.quantizedFp32Bytes() / 1e6, 100 * s.weightRatio(), s.otherBytes() / 1e6);
        System.out.printf("checkpoint -> %s (%.3f MB, %.1f %% of the FP32 model)%n", target, s.fileBytes() / 1e6, 100 * s.fileRatio());
        return 0;
    }
}

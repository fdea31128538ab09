package io.diffquant.engine.train;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/** Entry points for training a {@link DiffusionModel} with the {@link DiffusionObjective} (DiT train.py's recipe). */
public final class DiffusionTrainer {
    private DiffusionTrainer() {}

    /** The model's trainable tensors by state_dict name: every layer parameter (buffers such as pos_embed are fixed). */
    public static Map<String, Tensor> trainableParameters(DiffusionModel model) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Layer l : model.layers().all()) for (var e : l.params().entrySet()) out.put(l.qualified(e.getKey()), e.getValue());
        return out;
    }

    public static TrainingRun start(DiffusionModel model, Dataset data, TrainConfig config, DiffusionObjective.Config objective) {
        check(model, data);
        return TrainingRun.start(trainableParameters(model), DiffusionObjective.forModel(model, objective), data, config)
                .putMetadata("architecture", model.architecture());
    }

    public static TrainingRun resume(Path checkpoint, DiffusionModel model, Dataset data, TrainConfig config,
                                     DiffusionObjective.Config objective) throws IOException {
        check(model, data);
        return TrainingRun.resume(checkpoint, trainableParameters(model), DiffusionObjective.forModel(model, objective), data, config);
    }

    /**
     * Copies the run's EMA averages (or its raw parameters when EMA is off) into {@code target}, a separate model
     * instance used for sampling or export (the run's own tensors are refused: that would overwrite the training state).
     */
    public static void copyEmaInto(TrainingRun run, DiffusionModel target) {
        Map<String, Tensor> src = run.ema() != null ? run.ema().averages() : run.params();
        Map<String, Tensor> dst = trainableParameters(target);
        for (var e : dst.entrySet()) {
            Tensor own = run.params().get(e.getKey());
            if (own != null && own.data() == e.getValue().data()) throw new IllegalArgumentException(
                    "copyEmaInto: the target model is the one being trained; give a separate instance");
            AdamW.copyInto("training run", "EMA average", e.getKey(), src.get(e.getKey()), e.getValue());
        }
    }

    private static void check(DiffusionModel model, Dataset data) {
        if (data.channels() != model.inChannels() || data.height() != model.sampleSize() || data.width() != model.sampleSize())
            throw new IllegalArgumentException("dataset images are " + data.channels() + "x" + data.height() + "x" + data.width()
                    + " but the " + model.architecture() + " model takes " + model.inChannels() + "x" + model.sampleSize() + "x" + model.sampleSize());
    }
}

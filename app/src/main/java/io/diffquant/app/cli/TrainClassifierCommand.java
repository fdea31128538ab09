package io.diffquant.app.cli;

import io.diffquant.engine.io.FashionMnist;
import io.diffquant.engine.metrics.FmnistClassifier;
import io.diffquant.engine.metrics.FmnistClassifierTraining;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.metrics.FmnistReferenceStats;
import io.diffquant.engine.tensor.Parallel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;

/** Trains the Fashion-MNIST feature network of FID-FMNIST/sFID-FMNIST/IS-FMNIST and writes its folder (FmnistClassifierTraining). */
@Command(name = "train-classifier", mixinStandardHelpOptions = true,
        description = {"Train the Fashion-MNIST classifier behind FID-FMNIST, sFID-FMNIST and IS-FMNIST, and write its folder:",
                "config.json, model.safetensors, reference-stats.safetensors (test-set feature statistics and real-data floors), MODEL_CARD.md."})
final class TrainClassifierCommand implements Callable<Integer> {
    private static final FmnistClassifierTraining.Recipe D = FmnistClassifierTraining.Recipe.defaults();

    @Option(names = "--data", paramLabel = "DIR", description = "Fashion-MNIST IDX files (default: /usr/share/datasets/fashion-mnist)") Path data;
    @Option(names = "--out", paramLabel = "DIR", description = "output folder (default: <project>/" + FmnistMetrics.ASSET_DIR + ")") Path out;
    @Option(names = "--steps", description = "optimizer steps (default: 1500)") Long steps;
    @Option(names = "--batch", description = "images per step (default: 128)") Integer batch;
    @Option(names = "--lr", description = "AdamW learning rate (default: 1e-3)") Double lr;
    @Option(names = "--weight-decay", description = "AdamW weight decay (default: 1e-4)") Double weightDecay;
    @Option(names = "--warmup", description = "linear warm-up steps (default: 50)") Long warmup;
    @Option(names = "--decay-step", description = "multiply the learning rate by --decay-factor from this step on; 0 = never (default: 0)") Long decayStep;
    @Option(names = "--decay-factor", description = "step decay factor (default: 0.1)") Double decayFactor;
    @Option(names = "--ema", description = "EMA decay of the shipped weights (default: 0.999)") Double ema;
    @Option(names = "--seed", description = "seed (default: 0)") Long seed;
    @Option(names = "--budget-seconds", description = "stop training after this many seconds (default: no limit)") Double budgetSeconds;
    @Option(names = "--threads", description = "engine threads (default: all cores); the weights are reproducible for a fixed count") Integer threads;

    @Override public Integer call() throws Exception {
        if (threads != null) {
            if (threads < 1) throw new IllegalArgumentException("--threads must be >= 1, got " + threads);
            Parallel.setThreads(threads);
        }
        Duration budget = null;
        if (budgetSeconds != null) {
            if (!(budgetSeconds > 0)) throw new IllegalArgumentException("--budget-seconds must be > 0, got " + budgetSeconds);
            budget = Duration.ofMillis((long) (budgetSeconds * 1000));
        }
        FmnistClassifierTraining.Recipe r = new FmnistClassifierTraining.Recipe(seed != null ? seed : D.seed(),
                batch != null ? batch : D.batchSize(), steps != null ? steps : D.steps(), lr != null ? lr : D.lr(),
                weightDecay != null ? weightDecay : D.weightDecay(), warmup != null ? warmup : D.warmupSteps(),
                decayStep != null ? decayStep : D.decayStep(), decayFactor != null ? decayFactor : D.decayFactor(),
                ema != null ? ema : D.emaDecay(), budget);
        Path folder = out != null ? out : Path.of(System.getProperty(FmnistMetrics.ROOT_PROPERTY, ".")).resolve(FmnistMetrics.ASSET_DIR);
        FashionMnist fm = data != null ? new FashionMnist(data) : new FashionMnist();
        FashionMnist.Data train = fm.load(FashionMnist.Split.TRAIN), test = fm.load(FashionMnist.Split.TEST);
        System.err.printf("training %s on %d images, %d steps of %d, %d threads%n", FmnistClassifier.CLASS_NAME, train.size(),
                r.steps(), r.batchSize(), Parallel.threads());
        FmnistClassifierTraining.Outcome o = FmnistClassifierTraining.train(FmnistClassifier.Config.defaults(), r, train, test, rep -> {
            if (rep.step() % 10 == 0 || rep.step() == r.steps())
                System.err.printf("\rstep %d/%d  loss %.4f  batch acc %.3f  %.0f img/s  %.0f s   ", rep.step(), r.steps(), rep.loss(),
                        rep.terms().getOrDefault("accuracy", Double.NaN), rep.imagesPerSecond(), rep.elapsed().toMillis() / 1000.0);
        }, null);
        System.err.println();
        FmnistReferenceStats s = FmnistClassifierTraining.writeFolder(o, test.imagesMinusOneOne(0, test.size()), folder);
        System.out.printf("%s: %d steps in %.1f s, test accuracy %.2f %% (raw weights %.2f %%); floors FID-FMNIST %.4f, sFID-FMNIST %.4f -> %s%n",
                FmnistClassifier.CLASS_NAME, o.steps(), o.trainSeconds(), 100 * o.testAccuracy(), 100 * o.rawTestAccuracy(),
                s.fidFloor(), s.sfidFloor(), folder);
        return 0;
    }
}

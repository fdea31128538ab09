package io.diffquant.app.cli;

import io.diffquant.engine.io.FashionMnist;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.train.FashionMnistDataset;
import io.diffquant.engine.train.TrainingJob;
import io.diffquant.engine.train.TrainingRun;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Trains a DiT or UNet2DModel on Fashion-MNIST through {@link TrainingJob} (DiT train.py's recipe) and exports the
 * EMA weights as a model folder; Ctrl-C / SIGTERM write a checkpoint before the process exits.
 */
@Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Train a diffusion model (DiT or diffusers UNet2DModel config.json) on Fashion-MNIST.",
                "Writes the EMA weights as a model folder (config.json, weights, training.json) to --out.",
                "Checkpoints on a timer and on Ctrl-C / SIGTERM; --resume continues bit for bit (same data and --threads)."})
final class TrainCommand implements java.util.concurrent.Callable<Integer> {
    static final class Source {
        @Option(names = "--model-config", paramLabel = "FILE", required = true,
                description = "config.json of the model to train from scratch: DiT (facebookresearch names, \"_class_name\": \"DiT\") or diffusers UNet2DModel")
        Path modelConfig;
        @Option(names = "--resume", paramLabel = "CHECKPOINT", required = true,
                description = "continue the run saved in this checkpoint (model config and recipe come from it)")
        Path resume;
    }

    @ArgGroup(exclusive = true, multiplicity = "1") Source source;
    @Option(names = "--data", paramLabel = "DIR", defaultValue = "/usr/share/datasets/fashion-mnist",
            description = "Fashion-MNIST IDX files (default: ${DEFAULT-VALUE}, Debian package dataset-fashion-mnist)") Path data;
    @Option(names = "--limit", paramLabel = "N", description = "use only the first N training images (tests, quick trials)") Integer limit;
    @Option(names = "--out", paramLabel = "DIR", required = true, description = "model folder to write (EMA weights + config.json + training.json)") Path out;
    @Option(names = "--checkpoint", paramLabel = "FILE",
            description = "checkpoint file (default: <out>.checkpoint.safetensors next to --out; with --resume: the resumed file)") Path checkpoint;
    @Option(names = "--seed", description = "run seed: initial weights, data order, noise (default: 0)") Long seed;
    @Option(names = "--batch", description = "images per step (default: 64)") Integer batch;
    @Option(names = "--lr", description = "AdamW learning rate (default: 1e-4)") Double lr;
    @Option(names = "--weight-decay", description = "AdamW weight decay (default: 0)") Double weightDecay;
    @Option(names = "--ema-decay", description = "EMA decay of the exported weights (default: 0.9999)") Double emaDecay;
    @Option(names = "--warmup-steps", description = "linear learning-rate warm-up steps (default: 0)") Long warmup;
    @Option(names = "--grad-clip", description = "clip the global gradient norm to this; 0 = off (default: 0)") Double gradClip;
    @Option(names = "--steps", defaultValue = "0", description = "stop at this many optimizer steps in total; 0 = no limit (default: ${DEFAULT-VALUE})") long steps;
    @Option(names = "--budget-minutes", description = "stop after this much total training wall time (counting resumed runs)") Double budgetMinutes;
    @Option(names = "--checkpoint-minutes", defaultValue = "5", description = "checkpoint interval (default: ${DEFAULT-VALUE})") double checkpointMinutes;
    @Option(names = "--threads", description = "engine worker threads (default: all cores); bitwise reproducibility needs the same count") Integer threads;
    @Option(names = "--log-seconds", defaultValue = "10", description = "seconds between progress lines (default: ${DEFAULT-VALUE})") double logSeconds;

    @Override public Integer call() throws Exception {
        if (steps < 0) throw new IllegalArgumentException("--steps must be >= 0, got " + steps);
        if (budgetMinutes != null && !(budgetMinutes > 0)) throw new IllegalArgumentException("--budget-minutes must be > 0, got " + budgetMinutes);
        if (!(checkpointMinutes > 0)) throw new IllegalArgumentException("--checkpoint-minutes must be > 0, got " + checkpointMinutes);
        if (limit != null && limit < 1) throw new IllegalArgumentException("--limit must be >= 1, got " + limit);
        if (threads != null) {
            if (threads < 1) throw new IllegalArgumentException("--threads must be >= 1, got " + threads);
            Parallel.setThreads(threads);
        }
        PrintStream err = System.err;
        if (!Files.isDirectory(data)) throw new IllegalArgumentException("--data " + data + ": Fashion-MNIST directory not found "
                + "(install the Debian package dataset-fashion-mnist, which provides " + FashionMnist.DEFAULT_DIR + ", or give --data DIR)");
        FashionMnistDataset ds = FashionMnistDataset.load(data, FashionMnist.Split.TRAIN, limit == null ? Integer.MAX_VALUE : limit);
        String dataName = "Fashion-MNIST train, " + ds.size() + " images" + (limit == null ? "" : " (first " + limit + ")");
        Path ck = checkpoint != null ? checkpoint : source.resume != null ? source.resume
                : out.toAbsolutePath().resolveSibling(out.getFileName() + ".checkpoint.safetensors");
        TrainingJob.Limits limits = new TrainingJob.Limits(steps,
                budgetMinutes == null ? null : Duration.ofMillis((long) (budgetMinutes * 60_000)),
                Duration.ofMillis((long) (checkpointMinutes * 60_000)), ck);
        TrainingJob job;
        if (source.resume != null) {
            TrainingJob.Recipe saved = TrainingJob.savedRecipe(source.resume);
            checkSame("--seed", seed, saved.seed());
            checkSame("--batch", batch, saved.batchSize());
            checkSame("--lr", lr, saved.lr());
            checkSame("--weight-decay", weightDecay, saved.weightDecay());
            checkSame("--ema-decay", emaDecay, saved.emaDecay());
            checkSame("--warmup-steps", warmup, saved.warmupSteps());
            checkSame("--grad-clip", gradClip, saved.maxGradNorm());
            job = TrainingJob.resume(source.resume, ds, dataName, limits);
            err.printf("resuming %s at step %d (%s trained so far)%n", source.resume, job.step(), fmt(job.previousElapsed()));
            if (job.previousThreads() != 0 && job.previousThreads() != Parallel.threads())
                err.printf("warning: the checkpoint was written with %d threads, this run uses %d: the result may differ in the last bits "
                        + "from an uninterrupted run%n", job.previousThreads(), Parallel.threads());
        } else {
            TrainingJob.Recipe d = TrainingJob.Recipe.dit(0);
            TrainingJob.Recipe recipe = new TrainingJob.Recipe(seed != null ? seed : d.seed(), batch != null ? batch : d.batchSize(),
                    lr != null ? lr : d.lr(), weightDecay != null ? weightDecay : d.weightDecay(), emaDecay != null ? emaDecay : d.emaDecay(),
                    warmup != null ? warmup : d.warmupSteps(), gradClip != null ? gradClip : d.maxGradNorm());
            job = TrainingJob.create(source.modelConfig, ds, dataName, recipe, limits);
        }
        TrainingJob.Recipe r = job.recipe();
        err.printf("model: %s, %,d parameters (%s); data: %s; %d threads%n", job.model().architecture(), job.model().parameterCount(),
                source.modelConfig != null ? source.modelConfig : source.resume, dataName, Parallel.threads());
        err.printf("recipe: seed %d, batch %d, lr %g (warm-up %d), weight decay %g, EMA %g, grad clip %g; limits: %s steps, %s budget; "
                        + "checkpoint %s every %s min%n", r.seed(), r.batchSize(), r.lr(), r.warmupSteps(), r.weightDecay(), r.emaDecay(),
                r.maxGradNorm(), steps == 0 ? "no" : Long.toString(steps),
                budgetMinutes == null ? "no" : budgetMinutes + " min", ck, fmtNum(checkpointMinutes));

        AtomicBoolean cancel = new AtomicBoolean();
        CountDownLatch finished = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            cancel.set(true);
            err.println("\nstop requested: finishing the current step, writing the checkpoint ...");
            try {
                finished.await(10, TimeUnit.MINUTES);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
        }, "diffquant-train-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        Printer printer = new Printer(err, logSeconds);
        try {
            TrainingJob.Summary s = job.train(printer::accept, cancel::get);
            job.exportModel(out);
            err.printf("stopped: %s after %d steps (%d in this run, %.2f epochs) in %s total (%s this run); final loss %.5f%s%n",
                    reason(s.reason()), s.steps(), s.stepsThisCall(), s.epochs(), fmt(s.totalElapsed()), fmt(s.thisCall()),
                    s.lastWindowLoss(), terms(s.lastWindowTerms()));
            err.printf("checkpoint: %s%n", s.checkpoint());
            if (s.reason() == TrainingRun.StopReason.CANCELLED) err.println("resume with: " + resumeCommand(s.checkpoint()));
            System.out.printf("model folder written: %s (EMA weights at step %d)%n", out, s.steps());
            return 0;
        } finally {
            finished.countDown();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) { /* the hook is running: it returns once finished is counted down */ }
        }
    }

    private String resumeCommand(Path ck) {
        StringBuilder b = new StringBuilder("diffquant train --resume ").append(ck).append(" --out ").append(out);
        if (!data.equals(FashionMnist.DEFAULT_DIR)) b.append(" --data ").append(data);
        if (limit != null) b.append(" --limit ").append(limit);
        if (steps > 0) b.append(" --steps ").append(steps);
        if (budgetMinutes != null) b.append(" --budget-minutes ").append(fmtNum(budgetMinutes));
        b.append(" --threads ").append(Parallel.threads());
        return b.toString();
    }

    private static void checkSame(String option, Object given, Object saved) {
        if (given != null && !given.equals(saved)) throw new IllegalArgumentException(option + " " + given + " differs from the "
                + "checkpoint's " + saved + ": a resumed run continues the saved recipe (leave " + option + " out)");
    }

    private static String reason(TrainingRun.StopReason r) {
        return switch (r) {
            case MAX_STEPS -> "step limit reached";
            case WALL_CLOCK -> "wall-clock budget used";
            case CANCELLED -> "interrupted";
        };
    }

    static String fmt(Duration d) {
        if (d == null) return "?";
        long s = d.toSeconds();
        return s >= 3600 ? String.format("%dh%02dm%02ds", s / 3600, s / 60 % 60, s % 60) : String.format("%dm%02ds", s / 60, s % 60);
    }

    private static String fmtNum(double v) { return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v); }

    private static String terms(Map<String, Double> t) {
        StringBuilder b = new StringBuilder();
        if (t.isEmpty()) return "";
        b.append(" (");
        boolean first = true;
        for (var e : t.entrySet()) {
            b.append(first ? "" : ", ").append(e.getKey()).append(' ').append(String.format("%.5f", e.getValue()));
            first = false;
        }
        return b.append(')').toString();
    }

    /** Progress lines: the first steps, then one line per interval with the losses averaged over it. */
    private static final class Printer {
        private final PrintStream err;
        private final long intervalNanos;
        private long last = System.nanoTime();
        private int n;
        private double loss, ips;
        private final Map<String, Double> sums = new java.util.TreeMap<>();
        private int lines;

        Printer(PrintStream err, double seconds) {
            this.err = err;
            this.intervalNanos = (long) (Math.max(0, seconds) * 1e9);
        }

        void accept(TrainingJob.Progress p) {
            n++;
            loss += p.loss();
            ips += p.imagesPerSecond();
            p.terms().forEach((k, v) -> sums.merge(k, v, Double::sum));
            long now = System.nanoTime();
            if (lines < 3 || p.checkpointed() || now - last >= intervalNanos) {
                Map<String, Double> avg = new LinkedHashMap<>();
                sums.forEach((k, v) -> avg.put(k, v / n));
                err.printf("step %d%s  loss %.5f%s  |g| %.3f  lr %.2e  %.1f img/s  elapsed %s  ETA %s%s%n", p.step(),
                        p.maxSteps() > 0 ? "/" + p.maxSteps() : "", loss / n, terms(avg), p.gradNorm(), p.lr(), ips / n,
                        fmt(p.elapsed()), p.eta() == null ? "-" : fmt(p.eta()), p.checkpointed() ? "  [checkpoint]" : "");
                err.flush();
                last = now;
                lines++;
                n = 0;
                loss = ips = 0;
                sums.clear();
            }
        }
    }
}

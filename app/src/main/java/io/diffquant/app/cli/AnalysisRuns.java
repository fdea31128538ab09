package io.diffquant.app.cli;

import io.diffquant.engine.analysis.AnalysisSession;
import io.diffquant.engine.analysis.Histograms;
import io.diffquant.engine.analysis.LayerSensitivity;
import io.diffquant.engine.analysis.PerturbationSensitivity;
import io.diffquant.engine.analysis.TemporalFeatureError;
import io.diffquant.engine.analysis.TemporalMismatch;
import io.diffquant.engine.analysis.TrajectoryDeviation;
import io.diffquant.engine.analysis.Variant;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * The analyses of {@code diffquant analyze} (TFMQ-DM's analyses, ALGORITHMS.md §6; computed by
 * io.diffquant.engine.analysis), one call each that returns the engine's result with the one-line summary the command
 * prints: shared by {@code analyze} and {@code bench-full --analyses}, so both run the same code.
 */
final class AnalysisRuns {
    private AnalysisRuns() {}

    static final List<String> ANALYSES = List.of("temporal-error", "mismatch", "trajectory", "perturbation", "layer-sensitivity", "histogram");

    /** An analysis result with its summary line. */
    record Run<T>(T result, String summary) {}

    /** The analyses named in {@code what} (each ANALYSES name or "all"), in the order given; {@code option} names the option in errors. */
    static Set<String> parse(List<String> what, String option) {
        Set<String> out = new LinkedHashSet<>();
        for (String w : what) {
            String s = w.trim().toLowerCase(Locale.ROOT);
            if (s.equals("all")) out.addAll(ANALYSES);
            else if (ANALYSES.contains(s)) out.add(s);
            else throw new IllegalArgumentException(option + " '" + w + "': expected one of " + String.join(", ", ANALYSES) + " or all");
        }
        if (out.isEmpty()) throw new IllegalArgumentException(option + ": name at least one analysis (" + String.join(", ", ANALYSES) + ")");
        return out;
    }

    /** Per-timestep error of every temporal feature for each variant (the FP table is computed first and cached in the session). */
    static Run<TemporalFeatureError.Result> temporalError(AnalysisSession session, List<Variant> variants) {
        long a = System.nanoTime();
        session.fpFeatures();
        double fpSecs = secs(a);
        TemporalFeatureError.Result r = TemporalFeatureError.evaluate(session, variants);
        StringBuilder sb = new StringBuilder();
        for (TemporalFeatureError.ConfigError c : r.configs())
            sb.append(String.format(Locale.ROOT, "; %s: mean rel. L2 %.4g in %.2f s", c.config(), c.meanRelativeL2(), c.seconds()));
        return new Run<>(r, String.format(Locale.ROOT, "temporal-error: %d features x %d timesteps x %d labels, FP table %.2f s%s", r.features().size(),
                r.timesteps().length, r.labels() == null ? 1 : r.labels().length, fpSecs, sb));
    }

    /** Temporal information mismatch of each variant. */
    static Run<List<TemporalMismatch.Result>> mismatch(AnalysisSession session, List<Variant> variants) {
        long a = System.nanoTime();
        List<TemporalMismatch.Result> r = TemporalMismatch.evaluate(session, variants);
        StringBuilder sb = new StringBuilder();
        for (TemporalMismatch.Result c : r) sb.append(String.format(Locale.ROOT, "; %s: rate %.3f", c.config(), c.all().rate()));
        return new Run<>(r, String.format(Locale.ROOT, "mismatch: %.2f s%s", secs(a), sb));
    }

    /** Trajectory deviation of each variant from the FP trajectory (same noise). */
    static Run<TrajectoryDeviation.Result> trajectory(AnalysisSession session, List<Variant> variants) {
        long a = System.nanoTime();
        session.fpTrajectory();
        double fpSecs = secs(a);
        TrajectoryDeviation.Result r = TrajectoryDeviation.evaluate(session, variants);
        StringBuilder sb = new StringBuilder();
        for (TrajectoryDeviation.Series c : r.configs())
            sb.append(String.format(Locale.ROOT, "; %s: final L2 %.4g in %.1f s", c.config(), c.finalL2(), c.seconds()));
        return new Run<>(r, String.format(Locale.ROOT, "trajectory: FP %.1f s%s", fpSecs, sb));
    }

    /** Perturbation sensitivity of temporal vs non-temporal features; {@code metrics} null = MSE only. */
    static Run<PerturbationSensitivity.Result> perturbation(AnalysisSession session, double[] lambdas, int images, FmnistMetrics metrics) {
        PerturbationSensitivity.Result r = PerturbationSensitivity.evaluate(session, lambdas, images, metrics);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < lambdas.length; i++) sb.append(String.format(Locale.ROOT, "; λ=%s: MSE %.4g vs %.4g, FID %.3g vs %.3g", lambdas[i],
                r.temporal().mse()[i], r.nonTemporal().mse()[i], r.temporal().fid()[i], r.nonTemporal().fid()[i]));
        return new Run<>(r, String.format(Locale.ROOT, "perturbation (temporal vs non-temporal): %.1f s, FP FID %.3g%s", r.seconds(), r.fpFid(), sb));
    }

    /**
     * One layer at a time quantized with {@code spec}: every {@code every}-th (1 = each) of the layers matching
     * {@code layerGlobs} (empty = all), in model order.
     */
    static Run<LayerSensitivity.Result> layerSensitivity(AnalysisSession session, PointSpec spec, List<String> layerGlobs, int every) {
        if (every < 1) throw new IllegalArgumentException("layer-sensitivity: probe every k-th layer with k >= 1, got " + every);
        List<LayerSensitivity.LayerProbe> selected = candidates(session.model(), spec, layerGlobs), probes = new ArrayList<>();
        for (int i = 0; i < selected.size(); i += every) probes.add(selected.get(i));
        if (probes.isEmpty()) throw new IllegalArgumentException("--layers " + layerGlobs + ": no quantizable layer matches");
        LayerSensitivity.Result r = LayerSensitivity.evaluate(session, probes);
        int top = r.ranking()[0];
        return new Run<>(r, String.format(Locale.ROOT, "layer-sensitivity: %d layers in %.1f s; most sensitive %s (%.4g)", probes.size(), r.seconds(),
                probes.get(top).layer(), r.meanError()[top]));
    }

    /** The layer-sensitivity probes of the layers matching {@code layerGlobs} (empty = all), in model order. */
    static List<LayerSensitivity.LayerProbe> candidates(DiffusionModel model, PointSpec spec, List<String> layerGlobs) {
        List<LayerSensitivity.LayerProbe> out = new ArrayList<>();
        for (LayerSensitivity.LayerProbe p : LayerSensitivity.allLayers(model, spec)) if (selected(layerGlobs, p.layer())) out.add(p);
        return out;
    }

    /** Weight histograms and per-timestep input-activation histograms of the layers matching {@code layerGlobs}, with {@code spec}'s grids. */
    static Run<List<Histograms.Histogram>> histograms(AnalysisSession session, List<String> layerGlobs, int bins, PointSpec spec) {
        long a = System.nanoTime();
        DiffusionModel m = session.model();
        List<Histograms.Histogram> hs = new ArrayList<>(Histograms.weights(m, layerGlobs, bins, spec.weight().enabled() ? spec.weight() : null));
        hs.addAll(Histograms.activations(session, layerGlobs, bins, spec.input().enabled() ? spec.input() : null));
        return new Run<>(hs, String.format(Locale.ROOT, "histogram: %d histograms in %.1f s", hs.size(), secs(a)));
    }

    /**
     * A config file as a variant that reads the file at every application and keeps nothing afterwards (full-size
     * configs with learned rounding codes or cached temporal features take hundreds of MB each; eager variants would
     * hold all of them at once).
     */
    static Variant fromFile(String name, Path file, boolean force) {
        return new Variant(name, new Variant.Application() {
            @Override public Variant.Applied apply(DiffusionModel model) { return read().apply(model); }

            @Override public Variant.Applied applyTo(DiffusionModel model, Set<String> layers) { return read().applyTo(model, layers); }

            private Variant read() {
                try {
                    return Variant.of(name, QuantConfigCodec.read(file), force);
                } catch (IOException e) {
                    throw new UncheckedIOException("variant '" + name + "': " + e.getMessage(), e);
                }
            }
        });
    }

    static boolean selected(List<String> globs, String layer) {
        if (globs == null || globs.isEmpty()) return true;
        for (String g : globs) if (QuantPlan.matches(g, layer)) return true;
        return false;
    }

    private static double secs(long t0) { return (System.nanoTime() - t0) / 1e9; }
}

package io.diffquant.engine.analysis;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.io.AtomicFiles;
import io.diffquant.engine.io.Json;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The analyses' results as files (the CLI's {@code analyze} output and the GUI's export): one JSON document per analysis
 * (NaN and infinities written as null) and long-format CSV tables (one value per row, a header line, dot decimals),
 * every file written atomically.
 */
public final class AnalysisExport {
    private AnalysisExport() {}

    /** Schema tag of the JSON documents. */
    public static final String SCHEMA = "diffquant-analysis";

    /**
     * An analysis ready to be written.
     * @param stem file name stem ({@code <stem>.json}); csv maps file names to their contents
     */
    public record Output(String stem, ObjectNode json, Map<String, String> csv) {
        public Output {
            csv = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(csv));
        }

        /** Writes {@code <dir>/<stem>.json} and every CSV atomically; returns the paths written. */
        public List<Path> write(Path dir) throws IOException {
            if (!Files.isDirectory(dir)) throw new NoSuchFileException(dir.toString(), null, "the output directory does not exist");
            List<Path> out = new ArrayList<>();
            Path j = dir.resolve(stem + ".json");
            try {
                AtomicFiles.writeString(j, Json.mapper().writerWithDefaultPrettyPrinter().writeValueAsString(json) + "\n");
            } catch (JsonProcessingException e) {
                throw new IOException(j + ": " + e.getOriginalMessage(), e);
            }
            out.add(j);
            for (Map.Entry<String, String> e : csv.entrySet()) {
                Path p = dir.resolve(e.getKey());
                AtomicFiles.writeString(p, e.getValue());
                out.add(p);
            }
            return out;
        }
    }

    private static ObjectNode header(String analysis) {
        ObjectNode o = Json.object();
        o.put("schema", SCHEMA);
        o.put("analysis", analysis);
        return o;
    }

    // ------------------------------------------------------------------ temporal feature error

    public static Output temporalError(TemporalFeatureError.Result r, AnalysisSettings s) {
        ObjectNode o = header("temporal-error");
        settings(o, s);
        o.put("error", "relative L2 = ||e_hat - e||^2 / ||e||^2, MSE and cosine per feature and timestep, mean over labels");
        strings(o.putArray("features"), r.features());
        ints(o.putArray("timesteps"), r.timesteps());
        if (r.labels() != null) ints(o.putArray("labels"), r.labels());
        ArrayNode cs = o.putArray("configs");
        StringBuilder csv = new StringBuilder("config,feature,t,relative_l2,mse,cosine\n");
        int[] ts = r.timesteps();
        for (TemporalFeatureError.ConfigError c : r.configs()) {
            ObjectNode n = cs.addObject();
            n.put("name", c.config());
            num(n, "mean_relative_l2", c.meanRelativeL2());
            num(n, "mean_mse", c.meanMse());
            num(n, "mean_cosine", c.meanCosine());
            num(n, "seconds", c.seconds());
            doubles(n.putArray("mean_relative_l2_per_timestep"), c.meanRelativeL2PerTimestep());
            doubles(n.putArray("mean_relative_l2_per_feature"), c.meanRelativeL2PerFeature());
            matrix(n.putArray("relative_l2"), c.relativeL2());
            matrix(n.putArray("mse"), c.mse());
            matrix(n.putArray("cosine"), c.cosine());
            for (int i = 0; i < r.features().size(); i++) {
                for (int k = 0; k < ts.length; k++) row(csv, c.config(), r.features().get(i), ts[k], c.relativeL2()[i][k], c.mse()[i][k], c.cosine()[i][k]);
            }
            double[] m = c.meanRelativeL2PerTimestep();
            for (int k = 0; k < ts.length; k++) {
                double mm = 0, mc = 0;
                for (int i = 0; i < r.features().size(); i++) { mm += c.mse()[i][k]; mc += c.cosine()[i][k]; }
                int nf = Math.max(1, r.features().size());
                row(csv, c.config(), "mean", ts[k], m[k], mm / nf, mc / nf);
            }
        }
        return new Output("temporal-error", o, Map.of("temporal-error.csv", csv.toString()));
    }

    // ------------------------------------------------------------------ mismatch

    public static Output mismatch(List<TemporalMismatch.Result> rs, AnalysisSettings s) {
        ObjectNode o = header("mismatch");
        settings(o, s);
        o.put("distance", "mean over labels of ||e_hat_i(t, y) - e_i(t', y)||; mismatch when argmin_t' != t, rate over (t, y)");
        if (!rs.isEmpty()) ints(o.putArray("timesteps"), rs.getFirst().timesteps());
        ArrayNode cs = o.putArray("configs");
        StringBuilder rates = new StringBuilder("config,feature,mismatch_rate\n");
        StringBuilder cells = new StringBuilder("config,feature,t,t_prime,distance\n");
        for (TemporalMismatch.Result r : rs) {
            ObjectNode n = cs.addObject();
            n.put("name", r.config());
            num(n, "mismatch_rate", r.all().rate());
            ArrayNode fs = n.putArray("features");
            List<TemporalMismatch.FeatureMismatch> all = new ArrayList<>(r.features());
            all.add(r.all());
            int[] ts = r.timesteps();
            for (TemporalMismatch.FeatureMismatch f : all) {
                ObjectNode fn = fs.addObject();
                fn.put("feature", f.feature());
                num(fn, "rate", f.rate());
                ArrayNode near = fn.putArray("nearest_t");
                for (int k : f.nearest()) near.add(ts[k]);
                matrix(fn.putArray("distance"), f.distance());
                rates.append(csvText(r.config())).append(',').append(csvText(f.feature())).append(',').append(fmt(f.rate())).append('\n');
                for (int k = 0; k < ts.length; k++) for (int k2 = 0; k2 < ts.length; k2++)
                    cells.append(csvText(r.config())).append(',').append(csvText(f.feature())).append(',').append(ts[k]).append(',')
                            .append(ts[k2]).append(',').append(fmt(f.distance()[k][k2])).append('\n');
            }
        }
        Map<String, String> csv = new LinkedHashMap<>();
        csv.put("mismatch.csv", rates.toString());
        csv.put("mismatch-matrix.csv", cells.toString());
        return new Output("mismatch", o, csv);
    }

    // ------------------------------------------------------------------ trajectory

    public static Output trajectory(TrajectoryDeviation.Result r, AnalysisSettings s) {
        ObjectNode o = header("trajectory");
        settings(o, s);
        o.put("deviation", "after every sampling step: mean over samples of ||x_q - x_fp||_2, the same relative to ||x_fp||_2, and the MSE");
        o.put("samples", r.samples());
        ints(o.putArray("timesteps"), r.timesteps());
        ArrayNode cs = o.putArray("configs");
        StringBuilder csv = new StringBuilder("config,step,t,l2,relative,mse\n");
        int[] ts = r.timesteps();
        for (TrajectoryDeviation.Series c : r.configs()) {
            ObjectNode n = cs.addObject();
            n.put("name", c.config());
            num(n, "final_l2", c.finalL2());
            num(n, "seconds", c.seconds());
            doubles(n.putArray("l2"), c.l2());
            doubles(n.putArray("relative"), c.relative());
            doubles(n.putArray("mse"), c.mse());
            for (int k = 0; k < ts.length; k++)
                csv.append(csvText(c.config())).append(',').append(k).append(',').append(ts[k]).append(',').append(fmt(c.l2()[k])).append(',')
                        .append(fmt(c.relative()[k])).append(',').append(fmt(c.mse()[k])).append('\n');
        }
        return new Output("trajectory", o, Map.of("trajectory.csv", csv.toString()));
    }

    // ------------------------------------------------------------------ perturbation

    public static Output perturbation(PerturbationSensitivity.Result r, AnalysisSettings s) {
        ObjectNode o = header("perturbation");
        settings(o, s);
        o.put("noise", "Gaussian noise of magnitude lambda * std (std of each sample's feature values) at every denoiser call");
        o.put("images", r.images());
        o.put("metric", r.metric());
        num(o, "fp_fid", r.fpFid());
        num(o, "fid_floor", r.fidFloor());
        num(o, "seconds", r.seconds());
        doubles(o.putArray("lambdas"), r.lambdas());
        StringBuilder csv = new StringBuilder("target,lambda,fid,mse\n");
        for (PerturbationSensitivity.Sweep w : List.of(r.temporal(), r.nonTemporal())) {
            String key = w.target() == PerturbationSensitivity.Target.TEMPORAL ? "temporal" : "non_temporal";
            ObjectNode n = o.putObject(key);
            strings(n.putArray("sites"), w.sites());
            doubles(n.putArray("fid"), w.fid());
            doubles(n.putArray("mse"), w.mse());
            for (int i = 0; i < r.lambdas().length; i++)
                csv.append(key).append(',').append(fmt(r.lambdas()[i])).append(',').append(fmt(w.fid()[i])).append(',').append(fmt(w.mse()[i])).append('\n');
        }
        doubles(o.putArray("mse_ratio_temporal_over_non_temporal"), r.mseRatio());
        return new Output("perturbation", o, Map.of("perturbation.csv", csv.toString()));
    }

    // ------------------------------------------------------------------ layer sensitivity

    public static Output layerSensitivity(LayerSensitivity.Result r, AnalysisSettings s) {
        ObjectNode o = header("layer-sensitivity");
        settings(o, s);
        o.put("error", "||out_q - out_fp||^2 / ||out_fp||^2 of the model output at the FP trajectory's step inputs, one layer quantized");
        num(o, "seconds", r.seconds());
        ints(o.putArray("timesteps"), r.timesteps());
        ArrayNode ls = o.putArray("layers");
        StringBuilder csv = new StringBuilder("layer,spec,t,relative_error\n");
        int[] ts = r.timesteps();
        for (int i = 0; i < r.probes().size(); i++) {
            LayerSensitivity.LayerProbe p = r.probes().get(i);
            ObjectNode n = ls.addObject();
            n.put("layer", p.layer());
            n.put("spec", p.describe());
            num(n, "mean_error", r.meanError()[i]);
            doubles(n.putArray("errors"), r.relativeError()[i]);
            for (int k = 0; k < ts.length; k++)
                csv.append(csvText(p.layer())).append(',').append(csvText(p.describe())).append(',').append(ts[k]).append(',')
                        .append(fmt(r.relativeError()[i][k])).append('\n');
        }
        ArrayNode rank = o.putArray("ranking");
        for (int i : r.ranking()) rank.add(r.probes().get(i).layer());
        StringBuilder mean = new StringBuilder("rank,layer,spec,mean_error\n");
        int pos = 1;
        for (int i : r.ranking()) mean.append(pos++).append(',').append(csvText(r.probes().get(i).layer())).append(',')
                .append(csvText(r.probes().get(i).describe())).append(',').append(fmt(r.meanError()[i])).append('\n');
        Map<String, String> csvs = new LinkedHashMap<>();
        csvs.put("layer-sensitivity.csv", mean.toString());
        csvs.put("layer-sensitivity-heatmap.csv", csv.toString());
        return new Output("layer-sensitivity", o, csvs);
    }

    // ------------------------------------------------------------------ histograms

    public static Output histograms(List<Histograms.Histogram> hs, AnalysisSettings s) {
        ObjectNode o = header("histogram");
        if (s != null) settings(o, s);
        ArrayNode arr = o.putArray("histograms");
        StringBuilder bins = new StringBuilder("layer,tensor,t,bin,lo,hi,count\n");
        StringBuilder grid = new StringBuilder("layer,tensor,t,format,value\n");
        for (Histograms.Histogram h : hs) {
            ObjectNode n = arr.addObject();
            n.put("layer", h.layer());
            n.put("tensor", h.tensor());
            num(n, "t", h.timestep());
            n.put("elements", h.elements());
            n.put("non_finite", h.nonFinite());
            num(n, "lo", h.lo());
            num(n, "hi", h.hi());
            ArrayNode c = n.putArray("counts");
            for (long v : h.counts()) c.add(v);
            n.put("format", h.format());
            n.put("grid_note", h.gridNote());
            ArrayNode g = n.putArray("grid");
            for (float v : h.grid()) g.add(v);
            String t = Float.isNaN(h.timestep()) ? "all" : fmt(h.timestep());
            for (int b = 0; b < h.bins(); b++)
                bins.append(csvText(h.layer())).append(',').append(h.tensor()).append(',').append(t).append(',').append(b).append(',')
                        .append(fmt(h.edge(b))).append(',').append(fmt(h.edge(b + 1))).append(',').append(h.counts()[b]).append('\n');
            for (float v : h.grid())
                grid.append(csvText(h.layer())).append(',').append(h.tensor()).append(',').append(t).append(',').append(csvText(h.format()))
                        .append(',').append(fmt(v)).append('\n');
        }
        Map<String, String> csv = new LinkedHashMap<>();
        csv.put("histogram.csv", bins.toString());
        csv.put("histogram-grid.csv", grid.toString());
        return new Output("histogram", o, csv);
    }

    // ------------------------------------------------------------------ helpers

    private static void settings(ObjectNode o, AnalysisSettings s) {
        if (s == null) return;
        ObjectNode n = o.putObject("settings");
        n.put("sampler", s.sampler());
        n.put("steps", s.steps());
        n.put("respacing", s.respacing());
        n.put("eta", s.eta());
        n.put("schedule", s.schedule());
        n.put("cfg", s.cfgScale());
        n.put("seed", s.seed());
        n.put("samples", s.samples());
    }

    private static void num(ObjectNode o, String key, double v) {
        if (Double.isFinite(v)) o.put(key, v); else o.putNull(key);
    }

    private static void doubles(ArrayNode a, double[] v) {
        for (double x : v) if (Double.isFinite(x)) a.add(x); else a.addNull();
    }

    private static void matrix(ArrayNode a, double[][] m) {
        for (double[] r : m) doubles(a.addArray(), r);
    }

    private static void ints(ArrayNode a, int[] v) { for (int x : v) a.add(x); }

    private static void strings(ArrayNode a, List<String> v) { for (String x : v) a.add(x); }

    private static void row(StringBuilder sb, String config, String feature, int t, double a, double b, double c) {
        sb.append(csvText(config)).append(',').append(csvText(feature)).append(',').append(t).append(',').append(fmt(a)).append(',')
                .append(fmt(b)).append(',').append(fmt(c)).append('\n');
    }

    /** Shortest round-trip decimal; "NaN", "Infinity" and "-Infinity" for non-finite values. */
    static String fmt(double v) {
        if (Double.isNaN(v)) return "NaN";
        if (Double.isInfinite(v)) return v > 0 ? "Infinity" : "-Infinity";
        if (v == Math.rint(v) && Math.abs(v) < 1e15) return Long.toString((long) v);
        return Double.toString(v).toLowerCase(Locale.ROOT);
    }

    /** A CSV field, quoted when it holds a comma, quote or line break. */
    static String csvText(String s) {
        if (s == null) return "";
        if (s.indexOf(',') < 0 && s.indexOf('"') < 0 && s.indexOf('\n') < 0 && s.indexOf('\r') < 0) return s;
        return "\"" + s.replace("\"", "\"\"") + "\"";
    }
}

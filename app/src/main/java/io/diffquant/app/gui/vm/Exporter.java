package io.diffquant.app.gui.vm;

import io.diffquant.app.gui.charts.ChartFiles;
import io.diffquant.engine.io.AtomicFiles;
import io.diffquant.engine.io.ImageGrid;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.export.QuantizedCheckpoint;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.QuantPlan;
import org.jfree.chart.JFreeChart;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CancellationException;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/**
 * "Export everything" in one action (toolkit-free core of the export task): the current configuration's config JSON
 * (calibrated first when needed, docs/config-format.md), its quantized checkpoint ({@link QuantizedCheckpoint},
 * docs/export-format.md), the generated images and heatmap as PNG, every plot as PNG and SVG, and a report in Markdown
 * and HTML with the plots, the metrics table and the config. Every file is written atomically.
 */
public final class Exporter {
    /** What to write. */
    public record Options(boolean config, boolean checkpoint, boolean images, boolean plots, boolean report) {
        public static final Options ALL = new Options(true, true, true, true, true);
    }

    /** A plot to export: file stem, title for the report, and a factory building a fresh chart from immutable data. */
    public record Plot(String stem, String title, Supplier<JFreeChart> chart) {}

    /** What was written. */
    public record Summary(Path dir, List<Path> files, QuantConfig config) {}

    /** Progress sink: fraction in [0, 1] and a message. */
    public interface ProgressSink { void progress(double fraction, String message); }

    public static final int PLOT_WIDTH = 900, PLOT_HEIGHT = 520;

    private final ModelContext context;
    private final QuantViewModel.Target target;
    private final io.diffquant.engine.quant.preset.CalibrationJob.Request calibration;
    private final QuantConfig calibrated;
    private final GenerationOutcome outcome;
    private final List<Plot> plots;
    private final Path dir;
    private final Options options;
    private volatile io.diffquant.engine.quant.preset.CalibrationJob job;

    /**
     * @param calibrated the current config if already calibrated (else it is calibrated with {@code calibration})
     * @param outcome    the last generation (images, heatmap, metrics), or null
     */
    public Exporter(ModelContext context, QuantViewModel.Target target, io.diffquant.engine.quant.preset.CalibrationJob.Request calibration,
                    QuantConfig calibrated, GenerationOutcome outcome, List<Plot> plots, Path dir, Options options) {
        this.context = context;
        this.target = target;
        this.calibration = calibration;
        this.calibrated = calibrated;
        this.outcome = outcome;
        this.plots = List.copyOf(plots);
        this.dir = dir;
        this.options = options;
    }

    public void cancel() {
        var j = job;
        if (j != null) j.cancel();
    }

    public Summary run(BooleanSupplier cancelled, ProgressSink progress) throws Exception {
        Files.createDirectories(dir);
        List<Path> files = new ArrayList<>();
        QuantConfig config = calibrated;
        if (config == null && (options.config() || options.checkpoint() || options.report())) {
            progress.progress(0, "Calibrating " + target.method().label() + " for the export ...");
            config = Calibrations.run(calibration, cancelled, j -> job = j, p -> progress.progress(0.6 * Calibrations.fraction(p),
                    "Calibrating " + target.method().label() + ": [" + p.phase().name().toLowerCase() + "] " + p.message()));
        }
        check(cancelled);
        QuantPlan plan = config == null ? null : QuantConfigs.bind(config, context.model(), true).plan();
        if (options.config() && config != null) {
            progress.progress(0.6, "Writing the config ...");
            Path f = dir.resolve("config.json");
            QuantConfigCodec.write(config, f);
            files.add(f);
        }
        QuantizedCheckpoint.Summary ckpt = null;
        if (options.checkpoint() && config != null) {
            check(cancelled);
            progress.progress(0.65, "Writing the quantized checkpoint ...");
            Path f = dir.resolve("quantized.safetensors");
            QuantizedModel q = QuantConfigs.attach(config, context.model(), true);
            try {
                ckpt = QuantizedCheckpoint.write(q, config, f);
            } finally {
                q.detach();
            }
            files.add(f);
        }
        List<String[]> images = new ArrayList<>();
        if (options.images() && outcome != null) {
            check(cancelled);
            progress.progress(0.8, "Writing the images ...");
            image(files, images, "images/fp32.png", "FP32", outcome.fp() == null ? null : outcome.fp().finalGrid());
            image(files, images, "images/baseline.png", outcome.baseline() == null ? "Baseline" : outcome.baseline().label(),
                    outcome.baseline() == null ? null : outcome.baseline().finalGrid());
            image(files, images, "images/current.png", "Current config", outcome.current() == null ? null : outcome.current().finalGrid());
            GenerationOutcome.Heatmap h = outcome.currentHeatmap();
            if (h != null && h.frames() > 0) image(files, images, "images/difference-current.png",
                    String.format(Locale.ROOT, "|current − FP32| (0 … %.3g)", h.max(h.frames() - 1, false)), h.grid(h.frames() - 1, false));
            h = outcome.baselineHeatmap();
            if (h != null && h.frames() > 0) image(files, images, "images/difference-baseline.png",
                    String.format(Locale.ROOT, "|baseline − FP32| (0 … %.3g)", h.max(h.frames() - 1, false)), h.grid(h.frames() - 1, false));
        }
        List<String[]> plotFiles = new ArrayList<>();
        if (options.plots()) {
            int i = 0;
            for (Plot p : plots) {
                check(cancelled);
                progress.progress(0.85 + 0.1 * i++ / Math.max(1, plots.size()), "Writing plot " + p.title() + " ...");
                JFreeChart c = p.chart().get();
                if (c == null) continue;
                Path png = dir.resolve("plots").resolve(p.stem() + ".png"), svg = dir.resolve("plots").resolve(p.stem() + ".svg");
                ChartFiles.writePng(c, PLOT_WIDTH, PLOT_HEIGHT, png);
                ChartFiles.writeSvg(c, PLOT_WIDTH, PLOT_HEIGHT, svg);
                files.add(png);
                files.add(svg);
                plotFiles.add(new String[] {p.title(), "plots/" + p.stem() + ".png", "plots/" + p.stem() + ".svg"});
            }
        }
        if (options.report()) {
            progress.progress(0.97, "Writing the report ...");
            Path md = dir.resolve("report.md"), html = dir.resolve("report.html");
            AtomicFiles.writeString(md, markdown(config, plan, ckpt, images, plotFiles));
            AtomicFiles.writeString(html, html(config, plan, ckpt, images, plotFiles));
            files.add(md);
            files.add(html);
        }
        progress.progress(1, "Exported " + files.size() + " files to " + dir);
        return new Summary(dir, files, config);
    }

    private static void check(BooleanSupplier cancelled) {
        if (cancelled.getAsBoolean()) throw new CancellationException("export cancelled");
    }

    private void image(List<Path> files, List<String[]> images, String rel, String title, BufferedImage img) throws IOException {
        if (img == null) return;
        Path f = dir.resolve(rel);
        ImageGrid.writePng(img, f);
        files.add(f);
        images.add(new String[] {title, rel});
    }

    // ------------------------------------------------------------------ report

    private String headline() {
        return "DiffQuant Studio report — " + (context.folder() == null ? context.identity().name() : context.folder().getFileName())
                + " (" + context.model().architecture() + ")";
    }

    private List<String[]> summaryRows(QuantConfig config, QuantPlan plan, QuantizedCheckpoint.Summary ckpt) {
        List<String[]> r = new ArrayList<>();
        r.add(new String[] {"model", (context.folder() == null ? "" : context.folder() + " · ") + context.model().architecture()
                + String.format(Locale.ROOT, " · %,d parameters", context.model().parameterCount())});
        r.add(new String[] {"weights sha256", String.valueOf(context.identity().weightsSha256())});
        r.add(new String[] {"method", target.method().label()});
        r.add(new String[] {"layer overrides on the method", Integer.toString(target.overrides().size())});
        if (plan != null) {
            r.add(new String[] {"average weight bits", String.format(Locale.ROOT, "%.3f", plan.averageWeightBits())});
            r.add(new String[] {"model size", String.format(Locale.ROOT, "%.3f MB (FP32 %.3f MB, %.1f %%)", plan.modelSizeBytes() / 1e6,
                    plan.fpSizeBytes() / 1e6, 100 * plan.modelSizeBytes() / plan.fpSizeBytes())});
        }
        if (ckpt != null) r.add(new String[] {"quantized checkpoint", String.format(Locale.ROOT, "%d quantized tensors, %.3f MB file (%.1f %% of FP32)",
                ckpt.quantizedTensors(), ckpt.fileBytes() / 1e6, 100 * ckpt.fileRatio())});
        if (outcome != null) r.add(new String[] {"backend", outcome.backend()});
        if (outcome != null && outcome.fp() != null) {
            GenerationResult fp = outcome.fp();
            r.add(new String[] {"generation", fp.samples().dim(0) + " images, " + fp.totalSteps() + " DDIM steps"});
        }
        r.add(new String[] {"written", LocalDateTime.now().format(DateTimeFormatter.ISO_LOCAL_DATE_TIME)});
        return r;
    }

    private static String num(double v, String fmt) {
        return Double.isNaN(v) ? "–" : Double.isInfinite(v) ? "∞" : String.format(Locale.ROOT, fmt, v);
    }

    private static final String[] METRIC_HEADERS = {"column", "FID-FMNIST", "PSNR [dB]", "SSIM", "MSE", "max |Δ|", "avg W bits", "time [s]"};

    private static String[] metricCells(GenerationOutcome.MetricsRow m) {
        return new String[] {m.column(), num(m.fid(), "%.2f"), num(m.psnr(), "%.2f"), num(m.ssim(), "%.4f"), num(m.mse(), "%.3e"),
                num(m.maxAbs(), "%.3f"), num(m.avgWeightBits(), "%.2f"), num(m.seconds(), "%.1f")};
    }

    private List<String[]> overrideRows() {
        List<String[]> r = new ArrayList<>();
        for (LayerOverride o : target.overrides()) r.add(new String[] {o.pattern(), patch(o.weight()), patch(o.input())});
        return r;
    }

    private static String patch(io.diffquant.engine.quant.spec.SpecPatch p) {
        if (p.isKeep()) return "keep";
        if (p.isOff()) return "off (FP32)";
        StringBuilder sb = new StringBuilder();
        if (p.format() != null) sb.append(p.format().id());
        if (p.granularity() != null) sb.append('/').append(p.granularity().id());
        if (p.range() != null) sb.append('/').append(p.range().id());
        if (p.mode() != null) sb.append('/').append(p.mode().id());
        return sb.toString();
    }

    String markdown(QuantConfig config, QuantPlan plan, QuantizedCheckpoint.Summary ckpt, List<String[]> images, List<String[]> plotFiles) {
        StringBuilder sb = new StringBuilder("# ").append(headline()).append("\n\n");
        sb.append("| | |\n|---|---|\n");
        for (String[] r : summaryRows(config, plan, ckpt)) sb.append("| ").append(r[0]).append(" | ").append(r[1].replace("|", "\\|")).append(" |\n");
        if (outcome != null && !outcome.metrics().isEmpty()) {
            sb.append("\n## Metrics (vs FP32 from the same noise and labels)\n\n|");
            for (String h : METRIC_HEADERS) sb.append(' ').append(h).append(" |");
            sb.append("\n|").append("---|".repeat(METRIC_HEADERS.length)).append('\n');
            for (GenerationOutcome.MetricsRow m : outcome.metrics()) sb.append("| ").append(String.join(" | ", metricCells(m))).append(" |\n");
            sb.append("\nFID-FMNIST uses the product's own Fashion-MNIST classifier (not Inception-v3).\n");
            for (String n : outcome.notes()) sb.append("\n- ").append(n);
            if (!outcome.notes().isEmpty()) sb.append('\n');
        }
        if (!images.isEmpty()) {
            sb.append("\n## Images\n\n");
            for (String[] i : images) sb.append("**").append(i[0]).append("**\n\n![").append(i[0]).append("](").append(i[1]).append(")\n\n");
        }
        if (!plotFiles.isEmpty()) {
            sb.append("\n## Plots\n\n");
            for (String[] p : plotFiles) sb.append("![").append(p[0]).append("](").append(p[1]).append(")  \n[SVG](").append(p[2]).append(")\n\n");
        }
        sb.append("\n## Configuration\n\nMethod `").append(target.method().label()).append("`");
        List<String[]> ov = overrideRows();
        if (ov.isEmpty()) sb.append(" as the preset makes it.\n");
        else {
            sb.append(" with these per-layer overrides (later win):\n\n| layer | weight | input |\n|---|---|---|\n");
            for (String[] o : ov) sb.append("| `").append(o[0]).append("` | ").append(o[1]).append(" | ").append(o[2]).append(" |\n");
        }
        if (config != null) sb.append("\nThe full config is in `config.json` (docs/config-format.md).\n");
        return sb.toString();
    }

    private static String esc(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }

    String html(QuantConfig config, QuantPlan plan, QuantizedCheckpoint.Summary ckpt, List<String[]> images, List<String[]> plotFiles) {
        StringBuilder sb = new StringBuilder("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>")
                .append(esc(headline())).append("</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
                        + "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
                        + "th{background:#f1f1f1}td.n{text-align:right}img.grid{image-rendering:pixelated;width:280px;margin-right:12px}"
                        + "figure{display:inline-block;margin:0 12px 12px 0}pre{background:#f7f7f7;padding:8px;overflow:auto;max-height:420px}"
                        + "</style></head><body>\n<h1>").append(esc(headline())).append("</h1>\n<table>\n");
        for (String[] r : summaryRows(config, plan, ckpt)) sb.append("<tr><th>").append(esc(r[0])).append("</th><td>").append(esc(r[1])).append("</td></tr>\n");
        sb.append("</table>\n");
        if (outcome != null && !outcome.metrics().isEmpty()) {
            sb.append("<h2>Metrics (vs FP32 from the same noise and labels)</h2>\n<table><tr>");
            for (String h : METRIC_HEADERS) sb.append("<th>").append(esc(h)).append("</th>");
            sb.append("</tr>\n");
            for (GenerationOutcome.MetricsRow m : outcome.metrics()) {
                sb.append("<tr>");
                String[] c = metricCells(m);
                for (int i = 0; i < c.length; i++) sb.append(i == 0 ? "<td>" : "<td class=\"n\">").append(esc(c[i])).append("</td>");
                sb.append("</tr>\n");
            }
            sb.append("</table>\n<p>FID-FMNIST uses the product's own Fashion-MNIST classifier (not Inception-v3).</p>\n");
            if (!outcome.notes().isEmpty()) {
                sb.append("<ul>");
                for (String n : outcome.notes()) sb.append("<li>").append(esc(n)).append("</li>");
                sb.append("</ul>\n");
            }
        }
        if (!images.isEmpty()) {
            sb.append("<h2>Images</h2>\n");
            for (String[] i : images) sb.append("<figure><img class=\"grid\" src=\"").append(esc(i[1])).append("\" alt=\"").append(esc(i[0]))
                    .append("\"><figcaption>").append(esc(i[0])).append("</figcaption></figure>\n");
        }
        if (!plotFiles.isEmpty()) {
            sb.append("<h2>Plots</h2>\n");
            for (String[] p : plotFiles) sb.append("<figure><img src=\"").append(esc(p[2])).append("\" width=\"").append(PLOT_WIDTH)
                    .append("\" alt=\"").append(esc(p[0])).append("\"><figcaption>").append(esc(p[0])).append(" (<a href=\"").append(esc(p[1]))
                    .append("\">PNG</a>)</figcaption></figure>\n");
        }
        sb.append("<h2>Configuration</h2>\n<p>Method <code>").append(esc(target.method().label())).append("</code>");
        List<String[]> ov = overrideRows();
        if (ov.isEmpty()) sb.append(" as the preset makes it.</p>\n");
        else {
            sb.append(" with these per-layer overrides (later win):</p>\n<table><tr><th>layer</th><th>weight</th><th>input</th></tr>\n");
            for (String[] o : ov) sb.append("<tr><td><code>").append(esc(o[0])).append("</code></td><td>").append(esc(o[1])).append("</td><td>")
                    .append(esc(o[2])).append("</td></tr>\n");
            sb.append("</table>\n");
        }
        if (config != null) {
            String json = QuantConfigCodec.toJson(config);
            if (json.length() > 200_000) json = json.substring(0, 200_000) + "\n... (truncated; the whole config is in config.json)";
            sb.append("<details><summary>config.json</summary><pre>").append(esc(json)).append("</pre></details>\n");
        }
        return sb.append("</body></html>\n").toString();
    }
}

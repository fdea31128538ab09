package io.diffquant.engine.card;

import com.fasterxml.jackson.databind.JsonNode;
import io.diffquant.engine.io.FashionMnist;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.metrics.MetricsTable;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Renders MODEL_CARD.md from a card's metrics.json ({@link ModelCardJob}), in the layout of the shipped
 * fmnist-classifier card (sections after Mitchell et al. 2019, "Model Cards for Model Reporting"). Every number in
 * the card comes from the record, so re-rendering never needs re-sampling.
 */
public final class ModelCardText {
    private ModelCardText() {}

    /** The Markdown text of the card. */
    public static String render(JsonView record) {
        JsonNode r = record.node();
        StringBuilder b = new StringBuilder();
        String name = r.path("name").asText();
        String arch = r.path("architecture").asText();
        boolean dit = "DiT".equals(arch);
        JsonNode cfg = r.path("config");
        int classes = cfg.path("num_classes").asInt(0);
        boolean conditional = classes > 0;
        JsonNode samp = r.path("sampling");
        JsonNode ev = r.path("evaluation");
        JsonNode tr = r.path("training");
        JsonNode fn = r.path("feature_network");
        double chosenCfg = samp.path("cfg").asDouble(1);
        String weights = r.path("weights").asText();

        b.append("# ").append(name).append(": ").append(conditional ? "class-conditional " : "unconditional ")
                .append(dit ? "DiT" : "UNet").append(" for Fashion-MNIST (28x28x1)\n\n");
        b.append("A diffusion model trained from scratch by DiffQuant Studio (`diffquant train`) on Fashion-MNIST and shipped as one of the\n")
                .append("product's default models. ε-prediction on the ").append(samp.path("schedule").asText("linear"))
                .append(" schedule (T = ").append(samp.path("timesteps").asInt(1000)).append("); the weights are the ")
                .append(tr.path("weights_are").asText("EMA")).append(" weights, F32, in the ")
                .append(dit ? "facebookresearch/DiT `models.py`" : "diffusers `UNet2DModel`").append(" layout (`").append(weights).append("`).\n");
        b.append("The metrics use the product's own Fashion-MNIST classifier (`").append(fn.path("folder").asText("assets/fmnist-classifier"))
                .append("`): **FID-FMNIST, sFID-FMNIST and IS-FMNIST are not Inception FID/IS** and not comparable with them.\n\n");
        JsonNode grid = r.path("grid");
        b.append("![samples](").append(grid.path("file").asText(ModelCardJob.GRID)).append(")\n\n");
        b.append(String.format(Locale.ROOT, "`%s`: %dx%d grid (each pixel drawn as %s pixels), %s; %d DDIM steps%s, seed %d.%s\n\n", grid.path("file").asText(),
                grid.path("rows").asInt(), grid.path("cols").asInt(), grid.path("pixel_scale").asInt(1) + "x" + grid.path("pixel_scale").asInt(1), grid.path("layout").asText(), samp.path("steps").asInt(),
                conditional ? ", CFG scale " + f(chosenCfg) : "", samp.path("seed").asLong(),
                conditional && classes == FashionMnist.NUM_CLASSES ? " Rows: " + String.join(", ", numbered(FashionMnist.CLASS_NAMES)) + "." : ""));

        // ---- architecture
        b.append("## Architecture (`").append(r.path("model_class").asText()).append("`)\n\n");
        if (dit) {
            int in = cfg.path("input_size").asInt(), p = cfg.path("patch_size").asInt(), h = cfg.path("hidden_size").asInt();
            int heads = cfg.path("num_heads").asInt(), depth = cfg.path("depth").asInt();
            double mlp = cfg.path("mlp_ratio").asDouble();
            int g = p > 0 ? in / p : 0;
            b.append(String.format(Locale.ROOT, """
                    Input `[N, %d, %d, %d]` in [-1, 1]. Patch %d -> %dx%d = %d tokens of width %d with a fixed 2-D sin-cos position
                    embedding; %d DiT blocks (multi-head self-attention with %d heads of dimension %d, MLP ratio %s = %d hidden, GELU
                    tanh) conditioned by adaLN-Zero on the sum of the timestep embedding and the class embedding; %d classes plus
                    the null class (row %d of the class table, class_dropout_prob %s) for classifier-free guidance; final adaLN
                    layer and linear unpatchify to %d output channels (%s).
                    """, cfg.path("in_channels").asInt(), in, in, p, g, g, g * g, h, depth, heads, heads > 0 ? h / heads : 0, f(mlp),
                    (int) (h * mlp), classes, classes, f(cfg.path("class_dropout_prob").asDouble()),
                    cfg.path("learn_sigma").asBoolean() ? 2 * cfg.path("in_channels").asInt() : cfg.path("in_channels").asInt(),
                    cfg.path("learn_sigma").asBoolean() ? "ε and the learned-variance interpolation v, ADM's LEARNED_RANGE" : "ε"));
        } else {
            b.append(String.format(Locale.ROOT, """
                    Input `[N, %d, %d, %d]` in [-1, 1]. block_out_channels %s, layers_per_block %d; down blocks %s; mid block %s%s;
                    up blocks %s; attention_head_dim %s, GroupNorm with %d groups, %s time embedding (flip_sin_to_cos %s,
                    freq_shift %s), %s downsampling (padding %d); output: ε (%d channel%s).%s
                    """, cfg.path("in_channels").asInt(), cfg.path("sample_size").asInt(), cfg.path("sample_size").asInt(),
                    cfg.path("block_out_channels"), cfg.path("layers_per_block").asInt(), list(cfg.path("down_block_types")),
                    cfg.path("mid_block_type").asText(), cfg.path("add_attention").asBoolean(true) ? " with attention" : "",
                    list(cfg.path("up_block_types")), cfg.path("attention_head_dim").asText(), cfg.path("norm_num_groups").asInt(),
                    cfg.path("time_embedding_type").asText(), cfg.path("flip_sin_to_cos").asText(), cfg.path("freq_shift").asText(),
                    cfg.path("downsample_type").asText("conv"), cfg.path("downsample_padding").asInt(), cfg.path("out_channels").asInt(),
                    cfg.path("out_channels").asInt() == 1 ? "" : "s", conditional ? "" : " Unconditional (no class embedding)."));
        }
        b.append(String.format(Locale.ROOT, "%n- **Parameters**: %,d values in the state dict%s (%s, %,d bytes of weights).%n%n",
                r.path("parameters").asLong(), posEmbedNote(r), r.path("weights_dtypes").asText("F32"), r.path("weights_bytes").asLong()));
        b.append("| module | values |\n|---|---|\n");
        for (JsonNode g : r.path("parameter_groups")) b.append(String.format(Locale.ROOT, "| `%s` | %,d%s |%n", g.path("module").asText(),
                g.path("values").asLong(), g.has("note") ? " (" + g.path("note").asText() + ")" : ""));
        b.append("\n`config.json`:\n\n```json\n").append(compactJson(cfg)).append("\n```\n\n");

        // ---- data and training
        b.append("## Data\n\n");
        if (tr.isObject()) {
            b.append(String.format(Locale.ROOT, "Fashion-MNIST (Xiao, Rasul, Vollgraf 2017) from the Debian package `dataset-fashion-mnist`: %s "
                            + "(data fingerprint `%s`), pixels scaled to [-1, 1] as torchvision's ToTensor + Normalize(0.5, 0.5)%s.%n%n",
                    tr.path("data").path("description").asText(), tr.path("data").path("fingerprint").asText(),
                    conditional ? ", with their class labels" : ", labels unused"));
        } else {
            b.append("Not recorded (the model folder has no training.json).\n\n");
        }
        b.append("## Training recipe\n\n");
        if (tr.isObject()) {
            JsonNode rc = tr.path("recipe"), ob = tr.path("objective");
            b.append(String.format(Locale.ROOT, "%s-prediction, loss %s, %s schedule with T = %d%s. AdamW lr %s (betas %s, eps %s, weight decay %s), "
                            + "linear warm-up %d steps, gradient-norm clipping at %s, batch %d, EMA decay %s%s, seed %d.%n%n",
                    cap(ob.path("prediction").asText("epsilon")), ob.path("loss").asText(), ob.path("schedule").asText(), ob.path("timesteps").asInt(),
                    conditional ? String.format(Locale.ROOT, ", label dropout %s for classifier-free guidance", f(ob.path("class_dropout_prob").asDouble())) : "",
                    f(rc.path("lr").asDouble()), rc.path("adam_betas").asText().replace(",", "/"), f(rc.path("adam_eps").asDouble()).toLowerCase(Locale.ROOT),
                    f(rc.path("weight_decay").asDouble()), rc.path("warmup_steps").asLong(), f(rc.path("max_grad_norm").asDouble()),
                    rc.path("batch_size").asInt(), f(rc.path("ema_decay").asDouble()),
                    rc.path("ema_warmup").asBoolean() ? " with the (1 + n) / (10 + n) warm-up" : "", rc.path("seed").asLong()));
            double wall = tr.path("wall_seconds").asDouble();
            b.append(String.format(Locale.ROOT, "- steps: %,d (%.2f epochs, %,d images seen), stopped by %s%n", tr.path("steps").asLong(),
                    tr.path("epochs").asDouble(), tr.path("images_seen").asLong(), stopReason(tr.path("stop_reason").asText())));
            b.append(String.format(Locale.ROOT, "- wall time: %.1f s (%s) on this machine (%d cores visible), %d engine thread%s%s%n", wall,
                    hms(wall), tr.path("cores_visible").asInt(), tr.path("threads").asInt(), tr.path("threads").asInt() == 1 ? "" : "s",
                    r.has("training_note") ? "; " + r.path("training_note").asText() : ""));
            b.append("- the weights are bitwise reproducible for the same seed, data and thread count, also across checkpoint/resume\n");
            JsonNode fl = tr.path("final_loss");
            if (fl.isObject()) b.append(String.format(Locale.ROOT, "- final training loss (mean of steps %s): %.5f%s%n", fl.path("steps").asText(),
                    fl.path("loss").asDouble(), terms(fl)));
            JsonNode hist = tr.path("loss_history");
            if (hist.isArray() && !hist.isEmpty()) {
                b.append("\nLoss curve (mean per window of 100 steps").append(hist.size() > 12 ? ", 12 of " + hist.size() + " windows" : "").append("):\n\n");
                boolean vlb = hist.get(0).has("vlb");
                b.append(vlb ? "| steps | loss | mse | vlb |\n|---|---|---|---|\n" : "| steps | loss |\n|---|---|\n");
                for (int i : spread(hist.size(), 12)) {
                    JsonNode h = hist.get(i);
                    b.append(String.format(Locale.ROOT, "| %d-%d | %.5f |", h.path("from").asLong(), h.path("to").asLong(), h.path("loss").asDouble()));
                    if (vlb) b.append(String.format(Locale.ROOT, " %.5f | %.5f |", h.path("mse").asDouble(), h.path("vlb").asDouble()));
                    b.append('\n');
                }
            }
            b.append('\n');
        } else {
            b.append("Not recorded (the model folder has no training.json).")
                    .append(r.has("training_note") ? " Note: " + r.path("training_note").asText() : "").append("\n\n");
        }

        // ---- metrics
        int n = ev.path("images").asInt();
        b.append(String.format(Locale.ROOT, "## Metrics (%,d samples)%n%n", n));
        b.append(String.format(Locale.ROOT, "%,d samples, %d DDIM steps (eta 0, `%s` respacing), %s, seed %d, batch %d%s, samples clamped to [-1, 1]. "
                        + "Feature network `%s` (weights sha256 `%s`); reference statistics of its %,d test images.%n%n",
                n, samp.path("steps").asInt(), samp.path("respacing").asText(),
                conditional ? "CFG scale " + f(chosenCfg) + " on all channels, labels cycling 0.." + (classes - 1) + " (" + n / Math.max(1, classes) + " per class)"
                        : "no guidance (unconditional)",
                samp.path("seed").asLong(), samp.path("batch").asInt(),
                ev.has("reused_sweep_images") ? " (the first " + ev.path("reused_sweep_images").asInt() + " are the CFG sweep's images at the chosen scale)" : "",
                fn.path("folder").asText(), shortSha(fn.path("classifier_sha256").asText()),
                fn.path("reference_images").asLong()));
        JsonNode real = r.path("real_data");
        boolean hasReal = real.isObject();
        b.append("| metric | this model | real-data floor (test images ").append(fn.path("floor_split").asText("two halves of the test set").replace("images ", "")).append(")")
                .append(hasReal ? " | real images at the same N (" + String.format(Locale.ROOT, "%,d", real.path("images").asInt()) + " training images)" : "")
                .append(" |\n|---|---|---|").append(hasReal ? "---|" : "").append('\n');
        b.append(row(MetricsTable.FID_FMNIST, "**" + f4(ev.path(MetricsTable.FID_FMNIST).asDouble()) + "**", f4(fn.path("fid_floor").asDouble()),
                hasReal ? f4(real.path(MetricsTable.FID_FMNIST).asDouble()) : null));
        b.append(row(MetricsTable.SFID_FMNIST, "**" + f4(ev.path(MetricsTable.SFID_FMNIST).asDouble()) + "**", f4(fn.path("sfid_floor").asDouble()),
                hasReal ? f4(real.path(MetricsTable.SFID_FMNIST).asDouble()) : null));
        b.append(row(MetricsTable.IS_FMNIST, pm(ev, MetricsTable.IS_FMNIST), "–", hasReal ? pm(real, MetricsTable.IS_FMNIST) : null));
        if (conditional) {
            double acc = ev.path(MetricsTable.CLASS_ACCURACY).asDouble();
            b.append(row(MetricsTable.CLASS_ACCURACY, String.format(Locale.ROOT, "**%.2f %%** (bar >= %s %%: %s)", acc, f(ModelCardJob.ACCURACY_BAR),
                    acc >= ModelCardJob.ACCURACY_BAR ? "met" : "NOT met"), "–",
                    hasReal ? String.format(Locale.ROOT, "%.2f %% (classifier on real training images)", real.path(MetricsTable.CLASS_ACCURACY).asDouble()) : null));
        }
        b.append('\n');
        b.append("The floor is what two independent real sets of 5,000 score against each other; an FID computed from fewer samples is\n")
                .append("biased upwards by estimation noise alone").append(hasReal ? ", which the last column (real images, same N, same statistics) measures" : "")
                .append(". IS-FMNIST is the mean ± std over splits of at least 100 images (one split below 200 images).\n\n");
        JsonNode pc = ev.path("per_class_accuracy");
        if (conditional && pc.isArray()) {
            b.append("| class | accuracy |\n|---|---|\n");
            for (int c = 0; c < pc.size(); c++) b.append(String.format(Locale.ROOT, "| %d %s | %.1f %% |%n", c,
                    c < FashionMnist.CLASS_NAMES.size() ? FashionMnist.CLASS_NAMES.get(c) : "", pc.get(c).asDouble()));
            b.append('\n');
        }
        JsonNode sw = r.path("cfg_sweep");
        if (sw.isObject()) {
            b.append(String.format(Locale.ROOT, "### CFG scale%n%nChosen by a sweep on %,d samples per scale (same seeds, %d DDIM steps); rule: %s. Chosen: **%s**.%n%n",
                    sw.path("images").asInt(), sw.path("steps").asInt(), sw.path("rule").asText(), f(sw.path("chosen").asDouble())));
            b.append("| CFG scale | FID-FMNIST | sFID-FMNIST | IS-FMNIST | class accuracy |\n|---|---|---|---|---|\n");
            for (JsonNode p : sw.path("points")) b.append(String.format(Locale.ROOT, "| %s | %.4f | %.4f | %.4f | %.2f %% |%n", f(p.path("cfg").asDouble()),
                    p.path(MetricsTable.FID_FMNIST).asDouble(), p.path(MetricsTable.SFID_FMNIST).asDouble(), p.path(MetricsTable.IS_FMNIST).asDouble(),
                    p.path(MetricsTable.CLASS_ACCURACY).asDouble()));
            b.append('\n');
        } else if (conditional) {
            b.append("CFG scale ").append(f(chosenCfg)).append(" was given (no sweep).\n\n");
        }

        // ---- benchmark
        JsonNode bm = r.path("benchmark");
        if (bm.isObject()) {
            double wall = bm.path("wall_seconds").asDouble();
            b.append("## Sampling speed\n\n");
            b.append(String.format(Locale.ROOT, "%d images with %d DDIM steps%s in one batch, %d engine threads on this machine (%d cores): **%.1f s** "
                            + "(bar < %s s: %s); %.1f s of CPU time, load average %.1f when it started; %s.%n%n", bm.path("images").asInt(), bm.path("steps").asInt(),
                    conditional && bm.path("cfg").asDouble() != 1 ? String.format(Locale.ROOT, ", CFG %s (the denoiser sees %d rows per step)",
                            f(bm.path("cfg").asDouble()), bm.path("denoiser_rows_per_step").asInt()) : "",
                    bm.path("threads").asInt(), r.path("machine").path("cores").asInt(), wall, f(bm.path("bar_seconds").asDouble()),
                    wall < bm.path("bar_seconds").asDouble() ? "met" : "NOT met", bm.path("cpu_seconds").asDouble(), bm.path("load_average_before").asDouble(),
                    bm.path("how").asText("measured by 'diffquant card'")));
        }

        // ---- reproduction sample
        JsonNode rp = r.path("reproduction");
        JsonNode rm = rp.path("metrics"), tol = rp.path("tolerances");
        b.append("## Reproduction sample (checked by `ShippedModelsTest`)\n\n");
        b.append(String.format(Locale.ROOT, "%d images, %d DDIM steps (`%s`), seed %d, %s, one batch; raw images (F32, not clamped) in `%s`, sha256 of "
                        + "the image floats `%s`. The test regenerates them and requires every image within PSNR > %s dB of the stored one "
                        + "(identical float arithmetic reproduces the hash) and the metrics below within the tolerances.%n%n",
                rp.path("images").asInt(), rp.path("steps").asInt(), rp.path("respacing").asText(), rp.path("seed").asLong(),
                conditional ? "CFG " + f(rp.path("cfg").asDouble()) + ", labels " + rp.path("labels").asText() : "unconditional",
                rp.path("file").asText(), shortSha(rp.path("images_sha256").asText()), f(tol.path("min_psnr_db").asDouble())));
        double rel = tol.path("metric_relative").asDouble();
        String relText = String.format(Locale.ROOT, "± %s x max(1, value)", f(rel));
        b.append("| metric | recorded | tolerance |\n|---|---|---|\n");
        b.append(String.format(Locale.ROOT, "| %s | %.6f | %s |%n", MetricsTable.FID_FMNIST, rm.path(MetricsTable.FID_FMNIST).asDouble(), relText));
        b.append(String.format(Locale.ROOT, "| %s | %.6f | %s |%n", MetricsTable.SFID_FMNIST, rm.path(MetricsTable.SFID_FMNIST).asDouble(), relText));
        b.append(String.format(Locale.ROOT, "| %s | %.6f | %s |%n", MetricsTable.IS_FMNIST, rm.path(MetricsTable.IS_FMNIST).asDouble(), relText));
        if (rm.has(MetricsTable.CLASS_ACCURACY)) b.append(String.format(Locale.ROOT, "| %s | %.4f %% | ± %d image%s |%n", MetricsTable.CLASS_ACCURACY,
                rm.path(MetricsTable.CLASS_ACCURACY).asDouble(), tol.path("accuracy_images").asInt(), tol.path("accuracy_images").asInt() == 1 ? "" : "s"));
        b.append("\nThese numbers describe 32 images only (FID-FMNIST of so few samples is far above the floor by construction); they pin\n")
                .append("the model and the sampler, the quality figures are in the Metrics section.\n\n");

        // ---- checksums and reproduce
        b.append("## Checksums (sha256)\n\n");
        for (Iterator<Map.Entry<String, JsonNode>> it = r.path("files").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            b.append("- ").append(e.getKey()).append(": `").append(e.getValue().asText()).append("`\n");
        }
        if (!r.path("files").has(weights)) b.append("- ").append(weights).append(": `").append(r.path("weights_sha256").asText()).append("`\n");
        b.append('\n');
        b.append("## Reproduce\n\n");
        if (tr.isObject()) {
            JsonNode rc = tr.path("recipe");
            b.append(String.format(Locale.ROOT, """
                    Training (bit for bit with the same thread count; the model config is `config.json` above, the same as
                    `tools/train/%s.json`):

                    ```sh
                    bin/diffquant train --model-config tools/train/%s.json --data /usr/share/datasets/fashion-mnist --out /tmp/%s \\
                      --seed %d --batch %d --lr %s --warmup-steps %d --grad-clip %s --weight-decay %s --ema-decay %s \\
                      --steps %d --threads %d
                    ```

                    """, name, name, name, rc.path("seed").asLong(), rc.path("batch_size").asInt(), f(rc.path("lr").asDouble()),
                    rc.path("warmup_steps").asLong(), f(rc.path("max_grad_norm").asDouble()), f(rc.path("weight_decay").asDouble()),
                    f(rc.path("ema_decay").asDouble()), tr.path("steps").asLong(), tr.path("threads").asInt()));
        }
        b.append(String.format(Locale.ROOT, """
                This card (metrics.json, samples.png, reproduction.safetensors, MODEL_CARD.md):

                ```sh
                bin/diffquant card --model <trained model folder> --out assets/%s --count %d --steps %d --seed %d --cfg %s%s
                ```
                """, name, n, samp.path("steps").asInt(), samp.path("seed").asLong(), conditional ? f(chosenCfg) : "1",
                r.path("benchmark").isObject() ? "" : " --bench-count 0"));
        JsonNode tm = r.path("timings");
        if (tm.isArray() && !tm.isEmpty()) {
            List<String> parts = new ArrayList<>();
            double total = 0;
            for (JsonNode t : tm) {
                parts.add(String.format(Locale.ROOT, "%s %.0f s", t.path("phase").asText(), t.path("wall_seconds").asDouble()));
                total += t.path("wall_seconds").asDouble();
            }
            b.append(String.format(Locale.ROOT, "%nThe card took %.0f s (%s), %s.%n", total, String.join(", ", parts), r.path("created").asText()));
        }
        return b.toString();
    }

    private static String posEmbedNote(JsonNode r) {
        for (JsonNode g : r.path("parameter_groups")) if (g.has("note")) return String.format(Locale.ROOT, ", of which %,d (`%s`) are a %s",
                g.path("values").asLong(), g.path("module").asText(), g.path("note").asText());
        return "";
    }

    private static String row(String metric, String value, String floor, String real) {
        return "| " + metric + " | " + value + " | " + floor + " |" + (real == null ? "" : " " + real + " |") + "\n";
    }

    private static String pm(JsonNode o, String metric) {
        int splits = o.path(metric + " splits").asInt(1);
        return splits > 1 && o.has(metric + " std") ? String.format(Locale.ROOT, "%.4f ± %.4f (%d splits)", o.path(metric).asDouble(),
                o.path(metric + " std").asDouble(), splits) : String.format(Locale.ROOT, "%.4f (1 split)", o.path(metric).asDouble());
    }

    private static String stopReason(String r) {
        return switch (r) {
            case "max_steps" -> "the step limit";
            case "wall_clock" -> "the wall-clock budget";
            case "cancelled" -> "an interrupt (checkpoint written)";
            default -> r.replace('_', ' ');
        };
    }

    private static String terms(JsonNode fl) {
        List<String> t = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = fl.fields(); it.hasNext(); ) {
            var e = it.next();
            if (!e.getKey().equals("steps") && !e.getKey().equals("loss")) t.add(e.getKey() + " " + String.format(Locale.ROOT, "%.5f", e.getValue().asDouble()));
        }
        return t.isEmpty() ? "" : " (" + String.join(", ", t) + ")";
    }

    /** Up to k indices spread evenly over [0, n), always including the first and the last. */
    static int[] spread(int n, int k) {
        if (n <= k) {
            int[] a = new int[n];
            for (int i = 0; i < n; i++) a[i] = i;
            return a;
        }
        int[] a = new int[k];
        for (int i = 0; i < k; i++) a[i] = (int) Math.round(i * (n - 1) / (double) (k - 1));
        return a;
    }

    private static List<String> numbered(List<String> names) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < names.size(); i++) out.add(i + " " + names.get(i));
        return out;
    }

    private static String list(JsonNode arr) {
        List<String> s = new ArrayList<>();
        for (JsonNode x : arr) s.add(x.asText());
        return String.join(" / ", s);
    }

    private static String compactJson(JsonNode cfg) {
        List<String> s = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = cfg.fields(); it.hasNext(); ) {
            var e = it.next();
            s.add("  \"" + e.getKey() + "\": " + e.getValue().toString());
        }
        return "{\n" + String.join(",\n", s) + "\n}";
    }

    private static String cap(String s) { return s.isEmpty() ? s : s.equals("epsilon") ? "ε" : s; }

    private static String hms(double seconds) {
        long s = Math.round(seconds);
        return s >= 3600 ? String.format(Locale.ROOT, "%dh%02dm%02ds", s / 3600, s / 60 % 60, s % 60) : String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60);
    }

    private static String shortSha(String sha) { return sha; }

    private static String f(double v) { return MetricsTable.formatShort(v); }

    private static String f4(double v) { return String.format(Locale.ROOT, "%.4f", v); }
}

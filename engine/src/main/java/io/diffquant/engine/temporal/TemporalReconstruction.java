package io.diffquant.engine.temporal;

import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.preset.Reconstruction;
import io.diffquant.engine.quant.recon.BrecqReconstruction;
import io.diffquant.engine.quant.recon.ReconSettings;

import java.util.NoSuchElementException;

/**
 * The weight phase of the {@code tfmq} presets (TFMQ-DM, ALGORITHMS.md §5-§6): TIAR on the Temporal Information Block's
 * weights ({@link Tiar}, over every sampling timestep value of the calibration data and every label), then the
 * ordinary reconstruction of the rest (BRECQ / AdaRound / none) with the TIB layers excluded (they keep TIAR's
 * rounding). With TIAR off the rest runs as configured (TIB layers included unless {@code recon_exclude_temporal}).
 */
public final class TemporalReconstruction implements Reconstruction {
    private final boolean tiar;
    private final Reconstruction rest;
    private final int tiarIterations, tiarBatch;
    private final double tiarLr;
    private final Tiar.Mode tiarMode;

    /**
     * @param tiar           run TIAR first
     * @param rest           the reconstruction of the other layers
     * @param tiarIterations Adam steps of TIAR
     * @param tiarBatch      (t, y) rows per TIAR step
     * @param tiarLr         Adam learning rate of TIAR's rounding variables
     */
    public TemporalReconstruction(boolean tiar, Reconstruction rest, int tiarIterations, int tiarBatch, double tiarLr) {
        this(tiar, rest, tiarIterations, tiarBatch, tiarLr, Tiar.Mode.AUTO);
    }

    /** With TIAR's schedule ({@link Tiar.Mode}: joint, blockwise, or auto = joint when it fits the heap). */
    public TemporalReconstruction(boolean tiar, Reconstruction rest, int tiarIterations, int tiarBatch, double tiarLr, Tiar.Mode tiarMode) {
        if (rest == null) throw new IllegalArgumentException("temporal reconstruction: the reconstruction of the rest is null");
        if (tiarIterations < 0) throw new IllegalArgumentException("option 'tiar_iters': expected >= 0, got " + tiarIterations);
        if (tiarBatch < 1) throw new IllegalArgumentException("option 'tiar_batch': expected >= 1, got " + tiarBatch);
        if (!(tiarLr > 0) || Double.isInfinite(tiarLr)) throw new IllegalArgumentException("option 'tiar_lr': expected > 0, got " + tiarLr);
        this.tiar = tiar;
        this.rest = rest;
        this.tiarIterations = tiarIterations;
        this.tiarBatch = tiarBatch;
        this.tiarLr = tiarLr;
        this.tiarMode = tiarMode == null ? Tiar.Mode.AUTO : tiarMode;
    }

    @Override public String name() { return (tiar ? "tiar+" : "") + rest.name(); }

    @Override public boolean needsData() { return tiar || rest.needsData(); }

    public boolean tiar() { return tiar; }
    public Reconstruction rest() { return rest; }

    @Override public Run start(Context c) { return new TRun(c); }

    private final class TRun implements Run {
        private final Context c;
        private final ReconSettings settings;
        private Tiar.Run tiarRun;
        private Run restRun;
        private CalibratedParams afterTiar;
        private volatile boolean cancelled;

        TRun(Context c) {
            this.c = c;
            this.settings = ReconSettings.from(c.options());
            if (tiar) {
                if (c.data() == null) throw new IllegalArgumentException("TIAR needs the calibration data's sampling timesteps");
                float[] ts = timesteps(c.data().timesteps());
                tiarRun = Tiar.start(c.model(), c.plan(), c.initial(), ts, null, settings.withLr(tiarLr), tiarIterations, tiarBatch, tiarMode);
            } else {
                afterTiar = c.initial();
            }
        }

        @Override public boolean hasNext() {
            if (cancelled) return false;
            if (tiarRun != null && tiarRun.hasNext()) return true;
            return restRun == null || restRun.hasNext();
        }

        @Override public String next() {
            if (cancelled) throw new java.util.concurrent.CancellationException("reconstruction cancelled");
            if (tiarRun != null && tiarRun.hasNext()) return tiarRun.next();
            if (restRun == null) {
                if (afterTiar == null) afterTiar = tiarRun.result();
                Context rc = new Context(c.model(), c.plan(), afterTiar, c.data(), c.subset(), c.forwardBatch(), c.options());
                restRun = tiar && rest instanceof BrecqReconstruction b ? b.start(rc, settings.withExcludeTemporal(true)) : rest.start(rc);
                if (!restRun.hasNext()) return rest.name() + ": nothing to do";
                return restRun.next();
            }
            if (!restRun.hasNext()) throw new NoSuchElementException("reconstruction finished");
            return restRun.next();
        }

        @Override public CalibratedParams result() {
            if (restRun == null || restRun.hasNext()) throw new IllegalStateException("reconstruction has not finished");
            return restRun.result();
        }

        @Override public void cancel() {
            cancelled = true;
            if (tiarRun != null) tiarRun.cancel();
            if (restRun != null) restRun.cancel();
        }
    }

    /** int timesteps (sampling order) as floats. */
    static float[] timesteps(int[] ts) {
        float[] f = new float[ts.length];
        for (int i = 0; i < ts.length; i++) f[i] = ts[i];
        return f;
    }

    @Override public String toString() {
        return name() + (tiar ? " (TIAR " + tiarIterations + " steps, batch " + tiarBatch + ", lr " + tiarLr + ", " + tiarMode.id() + ")" : "");
    }
}

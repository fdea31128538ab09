package io.diffquant.engine.quant.calib;

import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.diffusion.SamplingRun;
import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.model.Denoiser;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.concurrent.CancellationException;

/**
 * Records a {@link CalibrationSet} step by step (pull-based: each {@link #next()} runs one sampling step of the
 * full-precision model and returns the progress). The denoiser inputs of every call are captured as the model sees
 * them; when a run finishes its file is written atomically and the manifest updated, so an interrupted recording
 * resumes at the first missing run. Cancel with {@link #cancel()} (between steps).
 */
public final class CalibrationRecorder implements Iterator<CalibrationRecorder.Progress> {

    /** After a step: run r of R, step s of S. */
    public record Progress(int run, int runs, int step, int steps) {
        public double fraction() { return runs == 0 ? 1 : (run + (double) step / Math.max(1, steps)) / runs; }
    }

    private final DiffusionModel model;
    private final ModelIdentity identity;
    private final CalibrationSettings settings;
    private final Path dir;
    private final List<CalibrationSet.RunFile> files;
    private final int[] imageShape;
    private int[] timesteps;
    private int run;
    private SamplingRun current;
    private final List<Call> calls = new ArrayList<>();
    private volatile boolean cancelled;

    private record Call(Tensor x, float t, int[] y) {}

    private CalibrationRecorder(DiffusionModel model, ModelIdentity identity, CalibrationSettings settings, Path dir,
                                List<CalibrationSet.RunFile> files, int[] timesteps) {
        this.model = model;
        this.identity = identity;
        this.settings = settings;
        this.dir = dir;
        this.files = new ArrayList<>(files);
        this.timesteps = timesteps;
        this.imageShape = new int[] {model.inChannels(), model.sampleSize(), model.sampleSize()};
        this.run = files.size();
    }

    /**
     * Starts or resumes a recording in {@code dir}. A directory holding a recording with other settings or another
     * model is refused (use another directory or delete it).
     */
    public static CalibrationRecorder start(DiffusionModel model, ModelIdentity identity, CalibrationSettings settings, Path dir) throws IOException {
        Files.createDirectories(dir);
        List<CalibrationSet.RunFile> done = new ArrayList<>();
        int[] ts = null;
        if (Files.isRegularFile(dir.resolve(CalibrationSet.MANIFEST))) {
            CalibrationSet old = CalibrationSet.open(dir);
            if (!old.settings().equals(settings)) throw new JsonException(dir.resolve(CalibrationSet.MANIFEST).toString(), "$.settings",
                    "this calibration cache was recorded with other settings (" + old.settings().toJson() + "); use another directory or delete it");
            String mm = old.model().mismatch(identity);
            if (mm != null) throw new JsonException(dir.resolve(CalibrationSet.MANIFEST).toString(), "$.model",
                    "this calibration cache belongs to another model: " + mm + "; use another directory or delete it");
            done.addAll(old.files());
            ts = old.timesteps();
        }
        return new CalibrationRecorder(model, identity, settings, dir, done, ts);
    }

    public int runs() { return settings.runs(); }
    public int runsDone() { return run; }
    public void cancel() { cancelled = true; if (current != null) current.cancel(); }

    @Override public boolean hasNext() { return !cancelled && run < settings.runs(); }

    @Override public Progress next() {
        if (cancelled) throw new CancellationException("calibration recording cancelled after " + run + " of " + settings.runs() + " runs");
        if (!hasNext()) throw new NoSuchElementException("calibration recording finished");
        if (current == null) {
            SampleRequest req = settings.request(model, run);
            Denoiser recorder = (x, t, y) -> {
                Tensor out = model.forward(x, t, y);
                float tv = t[0];
                for (float v : t) if (v != tv) throw new IllegalStateException("calibration recording: a denoiser call mixes timesteps");
                calls.add(new Call(x.copy(), tv, y == null ? null : y.clone()));
                return out;
            };
            current = Sampling.start(req.toBuilder().denoiser(recorder).build());
            calls.clear();
        }
        current.next();
        int step = current.stepsDone(), steps = current.totalSteps();
        Progress p = new Progress(run, settings.runs(), step, steps);
        if (current.isDone()) {
            try {
                finishRun(current.timestepsInOrder());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            current = null;
            run++;
            p = new Progress(run, settings.runs(), 0, steps);
        }
        return p;
    }

    private void finishRun(int[] ts) throws IOException {
        if (timesteps == null) timesteps = ts;
        else if (!Arrays.equals(timesteps, ts)) throw new IllegalStateException("calibration run " + run + " used timesteps "
                + Arrays.toString(ts) + ", earlier runs " + Arrays.toString(timesteps));
        if (calls.size() != ts.length) throw new IllegalStateException("calibration run " + run + ": " + calls.size()
                + " denoiser calls for " + ts.length + " steps");
        SafetensorsWriter w = new SafetensorsWriter();
        int rows = calls.get(0).x().dim(0);
        for (int i = 0; i < calls.size(); i++) {
            Call c = calls.get(i);
            if (c.t() != ts[i]) throw new IllegalStateException("calibration run " + run + ": call " + i + " at t=" + c.t() + ", expected " + ts[i]);
            w.add(CalibrationSet.tensorName(ts[i]), c.x());
        }
        int[] y = calls.get(0).y();
        if (y != null) w.addInts("y", y, y.length);
        w.metadata("run", Integer.toString(run)).metadata("first_sample", Integer.toString(run * settings.batch()));
        String name = String.format("run-%05d.safetensors", run);
        w.write(dir.resolve(name));
        int first = files.isEmpty() ? 0 : files.getLast().firstRow() + files.getLast().rows();
        files.add(new CalibrationSet.RunFile(name, first, rows));
        calls.clear();
        new CalibrationSet(dir, identity, settings, imageShape, timesteps, files).writeManifest();
    }

    /** The recording (complete when {@link #hasNext()} is false and it was not cancelled). */
    public CalibrationSet result() throws IOException {
        if (files.isEmpty() && timesteps == null) throw new IllegalStateException("nothing recorded yet");
        CalibrationSet s = new CalibrationSet(dir, identity, settings, imageShape, timesteps, files);
        if (files.isEmpty()) s.writeManifest();
        return s;
    }
}

package io.diffquant.app.gui.vm;

import io.diffquant.engine.analysis.AnalysisSession;
import io.diffquant.engine.analysis.AnalysisSettings;
import io.diffquant.engine.model.DiffusionModel;

/**
 * The engine's {@link AnalysisSession} of the loaded model, shared by the temporal, sensitivity and distribution panels so
 * that the full-precision side (feature table, trajectory, step inputs and outputs) is computed once. Used only on the
 * worker thread (the session is not thread-safe; the JobRunner runs one job at a time).
 */
public final class AnalysisContext {
    /** The analyses' sampling: DDIM 50 steps (the timesteps TFMQ's per-timestep parameters are calibrated at), 8 samples. */
    public static final AnalysisSettings SETTINGS = AnalysisSettings.DEFAULT;

    private AnalysisSession session;
    private DiffusionModel model;
    private AnalysisSettings settings = SETTINGS;

    /** The session of a model (a new one when the model or the settings changed). */
    public synchronized AnalysisSession session(DiffusionModel m) {
        if (session == null || model != m || !session.settings().equals(settings)) {
            session = new AnalysisSession(m, settings);
            model = m;
        }
        return session;
    }

    /** Changes the settings (the next session uses them; tests use fewer steps). */
    public synchronized void setSettings(AnalysisSettings s) {
        settings = s;
        session = null;
    }

    public synchronized AnalysisSettings settings() { return settings; }

    /** Drops the session (a new model was loaded). */
    public synchronized void reset() {
        session = null;
        model = null;
    }
}

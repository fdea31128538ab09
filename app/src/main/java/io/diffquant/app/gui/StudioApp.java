package io.diffquant.app.gui;

import io.diffquant.app.gui.view.MainWindow;
import io.diffquant.app.gui.view.ScreenshotRun;
import io.diffquant.app.gui.vm.JobRunner;
import io.diffquant.app.gui.vm.StudioSettings;
import io.diffquant.app.gui.vm.StudioViewModel;
import javafx.application.Application;
import javafx.application.Platform;
import javafx.geometry.Rectangle2D;
import javafx.stage.Screen;
import javafx.stage.Stage;

import java.nio.file.Path;

/** The DiffQuant Studio desktop application: one main window over a {@link StudioViewModel}. */
public class StudioApp extends Application {
    private final StudioOptions options;
    private StudioViewModel viewModel;
    private MainWindow window;
    private Stage stage;

    /** Used by {@link Application#launch}: options from {@link Launcher}. */
    public StudioApp() { this(Launcher.options()); }

    public StudioApp(StudioOptions options) { this.options = options; }

    public StudioViewModel viewModel() { return viewModel; }
    public MainWindow window() { return window; }

    @Override public void start(Stage primary) {
        FxTextLayoutGuard.install();   // before any text is laid out on two threads (JavaFX Pango race, see the class)
        this.stage = primary;
        viewModel = new StudioViewModel(options.screenshotMode() ? null : options.settingsFile(), new JobRunner());
        viewModel.setRoot(options.root());
        viewModel.quant().setCacheRoot(options.cacheDir());
        window = new MainWindow(viewModel, primary);
        StudioSettings s = viewModel.settings();
        Rectangle2D screen = Screen.getPrimary().getVisualBounds();
        primary.setWidth(Math.min(s.width(), screen.getWidth()));
        primary.setHeight(Math.min(s.height(), screen.getHeight()));
        if (!Double.isNaN(s.x()) && !Double.isNaN(s.y())
                && !Screen.getScreensForRectangle(new Rectangle2D(s.x(), s.y(), Math.min(s.width(), 200), 50)).isEmpty()) {
            primary.setX(s.x());
            primary.setY(s.y());
        }
        if (options.screenshotMode()) {
            primary.setWidth(Math.min(1280, screen.getWidth()));
            primary.setHeight(Math.min(820, screen.getHeight()));
        } else {
            primary.setMaximized(s.maximized());
            window.selectTab(s.selectedTab());
        }
        primary.show();
        DisplayPrewarm.start();   // the first generation display's code, loaded and compiled off the FX thread
        Path startup = StudioViewModel.startupModel(options.model(), options.root(), s);
        if (startup != null) viewModel.openModel(startup);
        else viewModel.statusProperty().set(StudioViewModel.startupMessage(options.root()).isEmpty() ? "No model loaded"
                : StudioViewModel.startupMessage(options.root()));
        if (options.screenshotMode()) {
            new ScreenshotRun(viewModel, window, options.screenshotDir(), options.screenshotSteps(), options.lingerMillis(),
                    error -> {
                        if (error != null) Launcher.fail(error);
                        Platform.exit();
                    }).start();
        }
    }

    @Override public void stop() {
        if (viewModel == null) return;
        if (!options.screenshotMode() && stage != null) {
            viewModel.rememberWindow(stage.getX(), stage.getY(), stage.getWidth(), stage.getHeight(), stage.isMaximized(), window.selectedTab());
            viewModel.rememberSession();
            viewModel.saveSettings();
        }
        viewModel.jobs().shutdown(2000);
    }
}

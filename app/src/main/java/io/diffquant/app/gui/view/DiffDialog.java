package io.diffquant.app.gui.view;

import io.diffquant.app.gui.vm.SpecDiff;
import javafx.beans.property.ReadOnlyObjectWrapper;
import javafx.scene.control.ButtonBar;
import javafx.scene.control.ButtonType;
import javafx.scene.control.Dialog;
import javafx.scene.control.Label;
import javafx.scene.control.TableCell;
import javafx.scene.control.TableColumn;
import javafx.scene.control.TableView;
import javafx.scene.layout.Priority;
import javafx.scene.layout.VBox;
import javafx.stage.Window;

import java.util.function.Function;

/**
 * Shows a {@link SpecDiff} (what an imported config, a bit-budget assignment or a preset would change) as a table of
 * changed layers with their weight and input specs before and after, and asks whether to apply it.
 */
public final class DiffDialog {
    public static final ButtonType APPLY = new ButtonType("Apply", ButtonBar.ButtonData.OK_DONE);

    private DiffDialog() {}

    /** The dialog (not shown); its result is {@link #APPLY} or CANCEL. */
    public static Dialog<ButtonType> create(Window owner, String title, String header, SpecDiff diff, String warning) {
        Dialog<ButtonType> d = new Dialog<>();
        if (owner != null) d.initOwner(owner);
        d.setTitle(title);
        d.setHeaderText(header + "\n" + diff.summary());
        TableView<SpecDiff.Change> t = new TableView<>();
        t.setId("diff-table");
        t.getItems().setAll(diff.changes());
        t.setPlaceholder(new Label("No layer changes"));
        t.getColumns().add(col("Layer", 230, SpecDiff.Change::layer, c -> false));
        t.getColumns().add(col("Weight before", 190, SpecDiff.Change::weightBefore, c -> false));
        t.getColumns().add(col("Weight after", 190, SpecDiff.Change::weightAfter, SpecDiff.Change::weightChanged));
        t.getColumns().add(col("Input before", 220, SpecDiff.Change::inputBefore, c -> false));
        t.getColumns().add(col("Input after", 220, SpecDiff.Change::inputAfter, SpecDiff.Change::inputChanged));
        t.setPrefSize(1080, 420);
        VBox.setVgrow(t, Priority.ALWAYS);
        VBox box = new VBox(8);
        if (warning != null && !warning.isBlank()) {
            Label w = new Label("⚠ " + warning);
            w.setId("diff-warning");
            w.setWrapText(true);
            w.setStyle("-fx-text-fill: #b45309;");
            box.getChildren().add(w);
        }
        box.getChildren().add(t);
        d.getDialogPane().setContent(box);
        d.getDialogPane().setId("diff-dialog");
        d.getDialogPane().getButtonTypes().addAll(APPLY, ButtonType.CANCEL);
        d.setResizable(true);
        return d;
    }

    private static TableColumn<SpecDiff.Change, String> col(String title, double width, Function<SpecDiff.Change, String> f,
                                                           java.util.function.Predicate<SpecDiff.Change> highlight) {
        TableColumn<SpecDiff.Change, String> c = new TableColumn<>(title);
        c.setPrefWidth(width);
        c.setCellValueFactory(cd -> new ReadOnlyObjectWrapper<>(f.apply(cd.getValue())));
        c.setCellFactory(x -> new TableCell<>() {
            @Override protected void updateItem(String v, boolean empty) {
                super.updateItem(v, empty);
                setText(empty ? null : v);
                SpecDiff.Change ch = empty || getTableRow() == null ? null : getTableRow().getItem();
                setStyle(ch != null && highlight.test(ch) ? "-fx-font-weight: bold; -fx-text-fill: #1d4ed8;" : "");
            }
        });
        return c;
    }
}

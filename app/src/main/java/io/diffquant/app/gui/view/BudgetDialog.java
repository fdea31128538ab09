package io.diffquant.app.gui.view;

import io.diffquant.app.gui.vm.BudgetViewModel;
import io.diffquant.app.gui.vm.StudioViewModel;
import javafx.beans.property.ObjectProperty;
import javafx.collections.FXCollections;
import javafx.geometry.Insets;
import javafx.scene.control.ButtonBar;
import javafx.scene.control.ButtonType;
import javafx.scene.control.ComboBox;
import javafx.scene.control.Dialog;
import javafx.scene.control.Label;
import javafx.scene.control.Spinner;
import javafx.scene.control.SpinnerValueFactory;
import javafx.scene.control.TextField;
import javafx.scene.layout.GridPane;
import javafx.stage.Window;

import java.util.Locale;

/**
 * "Assign under a bit budget": asks for the budget, the candidate formats and the strategy, runs the assignment on the
 * worker and shows the result as a diff ({@link DiffDialog}) to apply or discard.
 */
public final class BudgetDialog {
    private BudgetDialog() {}

    public static void show(Window owner, StudioViewModel studio) {
        BudgetViewModel vm = studio.budget();
        Dialog<ButtonType> d = new Dialog<>();
        if (owner != null) d.initOwner(owner);
        d.setTitle("Assign under a bit budget");
        d.setHeaderText(String.format(Locale.ROOT, "The model has %.2f average weight bits now. The assignment is shown as a diff before it is applied.",
                studio.layers().averageWeightBits()));
        GridPane g = new GridPane();
        g.setHgap(8);
        g.setVgap(8);
        g.setPadding(new Insets(10));
        ComboBox<BudgetViewModel.Strategy> strategy = new ComboBox<>(FXCollections.observableArrayList(BudgetViewModel.Strategy.values()));
        strategy.valueProperty().bindBidirectional(vm.strategyProperty());
        ObjectProperty<Double> budgetObj = vm.budgetProperty().asObject();
        Spinner<Double> budget = new Spinner<>();
        SpinnerValueFactory.DoubleSpinnerValueFactory bf = new SpinnerValueFactory.DoubleSpinnerValueFactory(1, 32, 6, 0.25);
        bf.valueProperty().bindBidirectional(budgetObj);
        budget.setValueFactory(bf);
        budget.setEditable(true);
        budget.setId("budget-bits");
        TextField cands = new TextField();
        cands.setId("budget-candidates");
        cands.textProperty().bindBidirectional(vm.candidatesProperty());
        cands.setPrefColumnCount(24);
        ObjectProperty<Double> groupObj = vm.groupBudgetProperty().asObject();
        Spinner<Double> group = new Spinner<>();
        SpinnerValueFactory.DoubleSpinnerValueFactory gf = new SpinnerValueFactory.DoubleSpinnerValueFactory(8, 1024, 128, 8);
        gf.valueProperty().bindBidirectional(groupObj);
        group.setValueFactory(gf);
        group.setEditable(true);
        ObjectProperty<Integer> genObj = vm.generationsProperty().asObject(), popObj = vm.populationProperty().asObject();
        Spinner<Integer> gens = new Spinner<>(new SpinnerValueFactory.IntegerSpinnerValueFactory(0, 100, 10));
        gens.getValueFactory().valueProperty().bindBidirectional(genObj);
        Spinner<Integer> pop = new Spinner<>(new SpinnerValueFactory.IntegerSpinnerValueFactory(2, 500, 50));
        pop.getValueFactory().valueProperty().bindBidirectional(popObj);
        Label greedyHelp = new Label("Greedy: every layer the table quantizes (all linear/conv layers if none) starts at its most precise candidate;\n"
                + "the least sensitive layers per saved bit go down first until the model's average weight bits are within the budget.\n"
                + "Sensitivity: the Sensitivity panel's result, else measured now (each layer alone at the cheapest candidate).");
        Label qditHelp = new Label("Q-DiT: the q-dit preset's evolutionary search of one group size per layer under mean(group size) >= the group budget,\n"
                + "at the method bar's bits; the searched plan becomes the table (method q-dit).");
        for (Label l : new Label[] {greedyHelp, qditHelp}) l.setStyle("-fx-text-fill: -fx-mid-text-color; -fx-font-size: 0.9em;");
        int r = 0;
        g.addRow(r++, new Label("Strategy"), strategy);
        g.addRow(r++, new Label("Average weight bits ≤"), budget);
        g.addRow(r++, new Label("Candidate formats"), cands);
        g.add(greedyHelp, 0, r++, 2, 1);
        g.addRow(r++, new Label("Q-DiT group budget"), group);
        g.addRow(r++, new Label("Q-DiT generations"), gens);
        g.addRow(r++, new Label("Q-DiT population"), pop);
        g.add(qditHelp, 0, r, 2, 1);
        d.getDialogPane().setContent(g);
        ButtonType run = new ButtonType("Compute", ButtonBar.ButtonData.OK_DONE);
        d.getDialogPane().getButtonTypes().addAll(run, ButtonType.CANCEL);
        d.showAndWait().filter(b -> b == run).ifPresent(b -> studio.runBudget(p -> {
            String header = String.format(Locale.ROOT, "%s\nAverage weight bits %.3f → %.3f", p.note(), p.bitsBefore(), p.bitsAfter());
            Dialog<ButtonType> diff = DiffDialog.create(owner, "Bit budget result", header, p.diff(), null);
            diff.setOnHidden(e -> {
                if (diff.getResult() == DiffDialog.APPLY) {
                    int n = vm.apply(p);
                    studio.statusProperty().set("Bit budget applied: " + n + " layers changed");
                }
            });
            diff.show();
        }));
    }
}

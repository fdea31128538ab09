package io.diffquant.app.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of {@code bin/diffquant}: the only place that prints. */
@Command(name = "diffquant", mixinStandardHelpOptions = true, version = "DiffQuant Studio 0.1.0",
        description = "Post-training quantization laboratory for diffusion models.",
        subcommands = {SampleCommand.class, InspectCommand.class, ForwardCommand.class, BenchCommand.class, StudioCommand.class,
                TrainCommand.class,
                ImportCommand.class,
                TrainClassifierCommand.class, EvalCommand.class, CardCommand.class,
                CalibrateCommand.class, QuantizeCommand.class, ResultsCommand.class,
                AnalyzeCommand.class, BenchBackendsCommand.class, BenchFullCommand.class, BenchQuantCommand.class,
                CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override public void run() { spec.commandLine().usage(System.out); }

    /** Errors a user can act on: one line with the message, no stack trace (set DIFFQUANT_DEBUG=1 for it). */
    static int handle(Exception ex, CommandLine cmd, CommandLine.ParseResult parseResult) {
        cmd.getErr().println("error: " + (ex.getMessage() == null ? ex.toString() : ex.getMessage()));
        if (System.getenv("DIFFQUANT_DEBUG") != null) ex.printStackTrace(cmd.getErr());
        return 2;
    }

    public static CommandLine commandLine() {
        return new CommandLine(new Main()).setExecutionExceptionHandler(Main::handle);
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }
}

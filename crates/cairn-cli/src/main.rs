//! `cairn`: inspect and run ONNX models with the Cairn engine.

mod fsutil;
mod inspect;
mod model;
mod npy;
mod report;
mod run;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Cairn: ship ONNX models in offline-first web apps",
    long_about = "Cairn turns a trained ONNX model into something a web app can ship and run offline.\n\n\
Start with `cairn inspect model.onnx` to see what a model needs, then\n\
`cairn run model.onnx --random` to check that Cairn runs it.",
    after_help = "Examples:\n  cairn inspect mobilenetv2.onnx\n  cairn inspect mobilenetv2.onnx --json --dim batch=4\n  cairn run mobilenetv2.onnx --input input=cat.npy --output logits.npy\n  cairn run mobilenetv2.onnx --random --runs 20\n  cairn ops"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Inspect(inspect::InspectArgs),
    Run(run::RunArgs),
    /// List the operators Cairn implements (`--markdown` writes SUPPORTED_OPS.md's content).
    Ops {
        #[arg(long)]
        markdown: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::main(args),
        Command::Run(args) => run::main(args),
        Command::Ops { markdown } => report::print_ops(markdown),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report::print_error(&err);
            ExitCode::FAILURE
        }
    }
}

//! `acme-harness conformance`: grade a recorded transcript, print the rule catalogue.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

/// Arguments of `acme-harness conformance`.
#[derive(Debug, Args)]
#[command(after_help = "Record a transcript with the mock server:\n\n  \
acme-harness admin requests KEY_ID --jsonl > transcript.jsonl\n  \
acme-harness conformance grade transcript.jsonl --junit report.xml\n\n\
The rules are explained, with how to fix a client, in docs/rules.md.")]
pub(crate) struct ConformanceArgs {
    #[command(subcommand)]
    command: ConformanceCommand,
}

#[derive(Debug, Subcommand)]
enum ConformanceCommand {
    /// Grade a transcript (JSON Lines of exchanges, format version 1) against every rule.
    /// Prints a Markdown report. Exit status: 0 no MUST rule failed, 1 a MUST rule failed,
    /// 2 the input could not be read.
    Grade {
        /// The transcript (JSON Lines); several files are merged in `seq` order.
        #[arg(value_name = "TRANSCRIPT.jsonl", required = true)]
        transcripts: Vec<PathBuf>,
        /// Also write the JSON report to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Also write a JUnit XML report (one test case per rule) to FILE.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Print only the summary line instead of the Markdown report.
        #[arg(long)]
        quiet: bool,
    },
    /// Print the rule reference (the Markdown of docs/rules.md), or write it with --write.
    Rules {
        /// Write the reference page to FILE (docs/rules.md) instead of printing it.
        #[arg(long, value_name = "FILE")]
        write: Option<PathBuf>,
    },
}

/// Runs a conformance command.
pub(crate) async fn run(args: ConformanceArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ConformanceCommand::Grade {
            transcripts,
            json,
            junit,
            quiet,
        } => grade(&transcripts, json, junit, quiet),
        ConformanceCommand::Rules { write } => {
            let page = ::conformance::docs::rules_markdown();
            match write {
                Some(path) => std::fs::write(&path, page)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{page}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn grade(
    files: &[PathBuf],
    json: Option<PathBuf>,
    junit: Option<PathBuf>,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let mut exchanges = Vec::new();
    for file in files {
        match ::conformance::read_transcript(file) {
            Ok(mut x) => exchanges.append(&mut x),
            Err(e) => bail!(
                "{e}\nA transcript is what `acme-harness admin requests KEY_ID --jsonl` prints: one JSON exchange per line."
            ),
        }
    }
    let name = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    let report = ::conformance::grade(name, exchanges);
    if quiet {
        println!("{}", report.summary());
    } else {
        print!("{}", report.to_markdown());
    }
    if let Some(path) = json {
        let text = report
            .to_json()
            .context("cannot serialize the JSON report")?;
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write the JSON report to {}", path.display()))?;
    }
    if let Some(path) = junit {
        std::fs::write(&path, report.to_junit())
            .with_context(|| format!("cannot write the JUnit report to {}", path.display()))?;
    }
    Ok(if report.must_failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

//! The judge: grades what an ACME client sent, and checks what an ACME server does.
//!
//! - [`rules`]: the catalogue. Each rule has a stable id, a one-line statement, the source it
//!   enforces (RFC 8555 section or Sectigo evidence), a [`Severity`] and a
//!   check over a [`Transcript`](view::Transcript) that returns findings naming the offending
//!   exchanges.
//! - [`report`]: [`grade`] a transcript; Markdown, JSON and JUnit XML writers.
//! - [`docs`]: the generated reference page docs/rules.md.
//! - [`server`]: what the property-based server suites (tests/server_suites.rs) use to talk
//!   to any ACME server over HTTP, the target taken from the environment.
//!
//! Transcripts are `acme_proto::transcript::Exchange` records (JSON Lines), so traffic
//! recorded anywhere can be graded; the judge never looks at server internals.
//!
//! A `§N` citation without an RFC number (a rule's "sectigo-behaviour.md §5", say) refers to
//! section N of docs/evidence.md, the project's record of Sectigo's behaviour.
#![warn(missing_docs)]

pub mod docs;
pub mod report;
pub mod rules;
pub mod server;
pub mod view;

pub use report::{Report, grade};
pub use rules::{Rule, Severity, Verdict, catalogue};

/// Reads a JSON Lines transcript file; the error names the file and the line.
pub fn read_transcript(
    path: &std::path::Path,
) -> Result<Vec<acme_proto::transcript::Exchange>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read transcript {}: {e}", path.display()))?;
    let exchanges = acme_proto::transcript::parse_jsonl(&text).map_err(|e| {
        format!(
            "{} is not a transcript (JSON Lines of exchanges): {e}",
            path.display()
        )
    })?;
    if exchanges.is_empty() {
        return Err(format!("{} holds no exchanges", path.display()));
    }
    Ok(exchanges)
}

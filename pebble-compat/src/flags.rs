//! Command lines in the syntax of Go's `flag` package, which `pebble` and
//! `pebble-challtestsrv` use: `-name`, `--name`, `-name=value`, `-name value` (not for
//! booleans), parsing stops at the first argument that is not a flag or after `--`, and
//! `-h`/`-help` ask for the usage. Suites start those binaries with such command lines, so a
//! stand-in must read them the same way.

use std::collections::BTreeMap;

/// Whether a flag takes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagKind {
    /// `-x` or `-x=true|false`; never takes the next argument.
    Bool,
    /// `-x value` or `-x=value`.
    Value,
}

/// One flag a command accepts.
#[derive(Clone, Copy, Debug)]
pub struct FlagSpec {
    /// Its name without dashes.
    pub name: &'static str,
    /// Boolean or valued.
    pub kind: FlagKind,
    /// The default, as Go's usage prints it (empty: none printed).
    pub default: &'static str,
    /// One line of help.
    pub usage: &'static str,
}

/// A parsed command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The flags given, by name; a boolean given as `-x` reads `"true"`.
    pub given: BTreeMap<String, String>,
    /// The arguments after the flags.
    pub rest: Vec<String>,
}

impl Parsed {
    /// The value given for `name`, or `default`.
    pub fn value<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.given.get(name).map_or(default, String::as_str)
    }

    /// Whether the boolean `name` is on.
    pub fn on(&self, name: &str) -> bool {
        self.given.get(name).is_some_and(|v| v == "true")
    }
}

/// Why a command line was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[allow(clippy::exhaustive_enums)] // callers match both: help exits 0, the rest 2
pub enum FlagError {
    /// `-h` or `-help`: print the usage and exit 0.
    #[error("help requested")]
    Help,
    /// Anything else: print the message and the usage, exit 2 (as Go does).
    #[error("{0}")]
    Bad(String),
}

/// Go's `strconv.ParseBool`.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `args` (without the program name) against `specs`.
pub fn parse(specs: &[FlagSpec], args: &[String]) -> Result<Parsed, FlagError> {
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        i += 1;
        let body = match arg.strip_prefix("--") {
            Some("") => break, // "--" ends the flags
            Some(rest) => rest,
            None => &arg[1..],
        };
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::Bad(format!("bad flag syntax: {arg}")));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(spec) = specs.iter().find(|s| s.name == name) else {
            if name == "h" || name == "help" {
                return Err(FlagError::Help);
            }
            return Err(FlagError::Bad(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let value = match (spec.kind, inline) {
            (FlagKind::Bool, None) => "true".to_owned(),
            (FlagKind::Bool, Some(v)) => match parse_bool(v) {
                Some(b) => b.to_string(),
                None => {
                    return Err(FlagError::Bad(format!(
                        "invalid boolean value {v:?} for -{name}: parse error"
                    )));
                }
            },
            (FlagKind::Value, Some(v)) => v.to_owned(),
            (FlagKind::Value, None) => match args.get(i) {
                Some(v) => {
                    i += 1;
                    v.clone()
                }
                None => return Err(FlagError::Bad(format!("flag needs an argument: -{name}"))),
            },
        };
        parsed.given.insert(name.to_owned(), value);
    }
    parsed.rest = args[i..].to_vec();
    Ok(parsed)
}

/// [`parse`] as a Go program's `main` does it: `-h` prints the usage (exit status 0), a bad
/// flag its message and the usage (2), both on stderr; `Err` carries that status.
pub fn parse_or_usage(program: &str, specs: &[FlagSpec], args: &[String]) -> Result<Parsed, i32> {
    match parse(specs, args) {
        Ok(p) => Ok(p),
        Err(FlagError::Help) => {
            eprint!("{}", usage(program, specs));
            Err(0)
        }
        Err(FlagError::Bad(message)) => {
            eprintln!("{message}");
            eprint!("{}", usage(program, specs));
            Err(2)
        }
    }
}

/// The usage text, laid out as Go's `flag.PrintDefaults` does.
pub fn usage(program: &str, specs: &[FlagSpec]) -> String {
    let mut out = format!("Usage of {program}:\n");
    let mut sorted: Vec<&FlagSpec> = specs.iter().collect();
    sorted.sort_by_key(|s| s.name);
    for s in sorted {
        out.push_str(&format!("  -{}", s.name));
        if s.kind == FlagKind::Value {
            out.push_str(" string");
        }
        out.push_str(&format!("\n    \t{}", s.usage));
        if !s.default.is_empty() {
            out.push_str(&format!(" (default {:?})", s.default));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SPECS: &[FlagSpec] = &[
        FlagSpec {
            name: "config",
            kind: FlagKind::Value,
            default: "test/config/pebble-config.json",
            usage: "config file",
        },
        FlagSpec {
            name: "strict",
            kind: FlagKind::Bool,
            default: "",
            usage: "strict mode",
        },
    ];

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn every_go_spelling_is_read() {
        for line in [
            &["-config", "a.json", "-strict"][..],
            &["--config", "a.json", "--strict"],
            &["-config=a.json", "-strict=true"],
            &["--config=a.json", "-strict=1"],
        ] {
            let p = parse(SPECS, &args(line)).unwrap();
            assert_eq!(p.value("config", "x"), "a.json", "{line:?}");
            assert!(p.on("strict"), "{line:?}");
            assert!(p.rest.is_empty());
        }
        let p = parse(SPECS, &args(&["-strict=false"])).unwrap();
        assert!(!p.on("strict"));
        assert_eq!(p.value("config", "dflt"), "dflt");
    }

    #[test]
    fn a_bool_never_takes_the_next_argument_and_parsing_stops_at_a_non_flag() {
        let p = parse(SPECS, &args(&["-strict", "false", "-config", "x"])).unwrap();
        assert!(p.on("strict"));
        assert_eq!(p.rest, args(&["false", "-config", "x"]));
        let p = parse(SPECS, &args(&["--", "-strict"])).unwrap();
        assert!(!p.on("strict"));
        assert_eq!(p.rest, args(&["-strict"]));
    }

    #[test]
    fn refusals_say_what_go_says() {
        let bad = |a: &[&str]| match parse(SPECS, &args(a)) {
            Err(FlagError::Bad(m)) => m,
            other => panic!("{a:?}: {other:?}"),
        };
        assert_eq!(bad(&["-nope"]), "flag provided but not defined: -nope");
        assert_eq!(bad(&["-config"]), "flag needs an argument: -config");
        assert_eq!(bad(&["---config"]), "bad flag syntax: ---config");
        assert!(bad(&["-strict=maybe"]).contains("-strict"));
        assert_eq!(parse(SPECS, &args(&["-h"])), Err(FlagError::Help));
        assert_eq!(parse(SPECS, &args(&["--help"])), Err(FlagError::Help));
    }

    #[test]
    fn usage_lists_flags_with_defaults() {
        let text = usage("pebble", SPECS);
        assert!(text.starts_with("Usage of pebble:\n"));
        assert!(text.contains("  -config string\n"), "{text}");
        assert!(text.contains("(default \"test/config/pebble-config.json\")"));
    }

    #[test]
    fn a_go_main_exits_0_after_help_and_2_after_a_bad_flag() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse_or_usage("pebble", SPECS, &args(&["-h"])).err(),
            Some(0)
        );
        assert_eq!(
            parse_or_usage("pebble", SPECS, &args(&["-nosuchflag"])).err(),
            Some(2)
        );
        let parsed = parse_or_usage("pebble", SPECS, &args(&["-config", "x.json"])).unwrap();
        assert_eq!(parsed.value("config", "default.json"), "x.json");
    }
}

//! The `tollgate` command: `tollgate check CATALOG` validates a catalog;
//! `tollgate run SCENARIO` plays a customer timeline on a simulated clock.

mod check;
mod expect;
mod keys;
mod ops;
mod run;
mod table;

use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "usage:
  tollgate check CATALOG.json
  tollgate run [--check] [--format json|table] SCENARIO.json";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let code = match args.first().map(String::as_str) {
        Some("check") => match args.get(1..) {
            Some([path]) => check::run(path, &mut stdout),
            _ => usage(&mut stderr),
        },
        Some("run") => match run_options(args.get(1..).unwrap_or_default()) {
            Some(options) => run::run(&options, &mut stdout, &mut stderr),
            None => usage(&mut stderr),
        },
        Some("--help" | "-h" | "help") => {
            let _ = writeln!(stdout, "{USAGE}");
            0
        }
        _ => usage(&mut stderr),
    };
    ExitCode::from(code)
}

/// The options of `tollgate run`, in any order; `None` for anything else.
fn run_options(args: &[String]) -> Option<run::Options> {
    let mut check = false;
    let mut format = run::Format::Json;
    let mut path = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let format_value = match arg.as_str() {
            "--check" => {
                check = true;
                continue;
            }
            "--format" => args.next().map(String::as_str),
            other => other.strip_prefix("--format="),
        };
        match (format_value, arg.starts_with('-')) {
            (Some("json"), _) => format = run::Format::Json,
            (Some("table"), _) => format = run::Format::Table,
            (None, false) if path.is_none() => path = Some(arg.clone()),
            _ => return None,
        }
    }
    Some(run::Options {
        path: path?,
        check,
        format,
    })
}

fn usage(out: &mut impl Write) -> u8 {
    let _ = writeln!(out, "{USAGE}");
    2
}

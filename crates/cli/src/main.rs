//! The `tollgate` command: `tollgate check CATALOG` validates a catalog;
//! `tollgate run SCENARIO` plays a customer timeline on a simulated clock.

mod check;

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
        Some("--help" | "-h" | "help") => {
            let _ = writeln!(stdout, "{USAGE}");
            0
        }
        _ => usage(&mut stderr),
    };
    ExitCode::from(code)
}

fn usage(out: &mut impl Write) -> u8 {
    let _ = writeln!(out, "{USAGE}");
    2
}

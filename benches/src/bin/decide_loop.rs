//! `decide-loop parse|decide N`: parses or decides the `decision` benchmark's upgrade `N`
//! times in a plain loop. Timings on a shared machine wander; the instructions callgrind
//! counts for a loop do not, so `benches/instructions.sh` runs this under callgrind for two
//! values of `N` and reports the difference per iteration.

use std::hint::black_box;
use std::process::ExitCode;
use tollgate_benches::setup::upgrade;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (what, count) = match args.as_slice() {
        [what, count] => (what.as_str(), count.parse::<u64>().ok()),
        _ => ("", None),
    };
    let Some(count) = count else {
        eprintln!("usage: decide-loop parse|decide N");
        return ExitCode::from(2);
    };
    let setup = match upgrade() {
        Ok(setup) => setup,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let failed = match what {
        "parse" => (0..count).any(|_| black_box(setup.parse()).is_err()),
        "decide" => (0..count).any(|_| black_box(black_box(&setup).decide()).is_err()),
        _ => {
            eprintln!("usage: decide-loop parse|decide N");
            return ExitCode::from(2);
        }
    };
    if failed {
        eprintln!("the {what} failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

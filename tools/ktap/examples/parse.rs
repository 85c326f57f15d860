//! Parses a KTAP log and prints the report.
//!
//! Usage: `cargo run -p ktap --example parse -- [--json|--counts] [FILE]`
//! (standard input when no file is given). `--counts` prints
//! `pass fail skip total` on one line, for comparing with `kunit.py parse`.

use std::fs::File;
use std::io::{self, BufReader};

fn main() -> io::Result<()> {
    let mut format = "human";
    let mut file = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => format = "json",
            "--counts" => format = "counts",
            _ => file = Some(arg),
        }
    }
    let report = match file {
        Some(path) => ktap::parse_reader(BufReader::new(File::open(path)?)),
        None => ktap::parse_reader(io::stdin().lock()),
    };
    match format {
        "json" => println!("{}", report.to_json()),
        "counts" => {
            let c = report.counts;
            println!("{} {} {} {}", c.pass, c.failed(), c.skip, c.total());
        }
        _ => print!("{}", report.render_human()),
    }
    Ok(())
}

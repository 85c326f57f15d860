//! Writes a synthetic KTAP log with N test cases to standard output, for
//! measuring parser throughput (against `kunit.py parse`, say).
//!
//! Usage: `cargo run --release -p ktap --example gen_big -- [N]` (default
//! 100000). Cases come in suites of 100; every tenth suite holds a
//! parameterised case with nested results; lines carry printk timestamps
//! and interleaved kernel messages; about 1% of cases fail and 2% skip.

use std::io::{self, BufWriter, Write};

fn main() -> io::Result<()> {
    let n: u64 = match std::env::args().nth(1) {
        Some(a) => a
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("N: {e}")))?,
        None => 100_000,
    };
    const PER_SUITE: u64 = 100;
    const PARAMS: u64 = 10;
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut clock: u64 = 0;
    let mut ts = |out: &mut BufWriter<_>| -> io::Result<()> {
        clock += 37;
        write!(out, "[{:5}.{:06}] ", clock / 1_000_000, clock % 1_000_000)
    };
    let mut emitted: u64 = 0;
    let mut suites: Vec<u64> = Vec::new();
    // Plan the suites so that exactly `n` leaf cases are produced.
    let mut remaining = n;
    while remaining > 0 {
        let suite_no = suites.len() as u64;
        let parametrised = suite_no % 10 == 9;
        let max = if parametrised {
            PER_SUITE - 1 + PARAMS
        } else {
            PER_SUITE
        };
        let take = remaining.min(max);
        suites.push(take);
        remaining -= take;
    }
    ts(&mut out)?;
    writeln!(out, "KTAP version 1")?;
    ts(&mut out)?;
    writeln!(out, "1..{}", suites.len())?;
    for (s, &leaves) in suites.iter().enumerate() {
        let parametrised = s % 10 == 9 && leaves > PARAMS;
        let cases = if parametrised {
            leaves - PARAMS + 1
        } else {
            leaves
        };
        ts(&mut out)?;
        writeln!(out, "    KTAP version 1")?;
        ts(&mut out)?;
        writeln!(out, "    # Subtest: suite_{s}")?;
        ts(&mut out)?;
        writeln!(out, "    1..{cases}")?;
        let mut suite_failed = false;
        for c in 1..=cases {
            if parametrised && c == cases {
                ts(&mut out)?;
                writeln!(out, "        KTAP version 1")?;
                ts(&mut out)?;
                writeln!(out, "        # Subtest: case_{c}")?;
                for p in 1..=PARAMS {
                    ts(&mut out)?;
                    writeln!(out, "        ok {p} param-{p}")?;
                    emitted += 1;
                }
                ts(&mut out)?;
                writeln!(
                    out,
                    "    # case_{c}: pass:{PARAMS} fail:0 skip:0 total:{PARAMS}"
                )?;
                ts(&mut out)?;
                writeln!(out, "    ok {c} case_{c}")?;
                continue;
            }
            emitted += 1;
            if emitted % 1000 == 500 {
                ts(&mut out)?;
                writeln!(
                    out,
                    "random: kernel noise at 0xffff888003c4b000 while testing"
                )?;
            }
            if emitted % 100 == 42 {
                suite_failed = true;
                ts(&mut out)?;
                writeln!(out, "    # case_{c}: EXPECTATION FAILED at lib/test.c:{c}")?;
                ts(&mut out)?;
                writeln!(out, "    Expected a == b, but")?;
                ts(&mut out)?;
                writeln!(out, "        a == {c}")?;
                ts(&mut out)?;
                writeln!(out, "    not ok {c} case_{c}")?;
            } else if emitted % 50 == 7 {
                ts(&mut out)?;
                writeln!(out, "    ok {c} case_{c} # SKIP not supported")?;
            } else {
                ts(&mut out)?;
                writeln!(out, "    ok {c} case_{c}")?;
            }
        }
        ts(&mut out)?;
        let verdict = if suite_failed { "not ok" } else { "ok" };
        writeln!(out, "{verdict} {} suite_{s}", s + 1)?;
    }
    out.flush()
}

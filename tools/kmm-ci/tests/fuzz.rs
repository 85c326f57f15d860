//! A mutation fuzzer for what reads a console: the KTAP parser and the
//! splat detector, seeded with real logs (ktap's corpus, the kernel's
//! KUnit logs, kmm-boot's console fixtures), run for a bounded time in
//! every `cargo test` (`KTAP_FUZZ_SECS`, default 10; `KTAP_FUZZ_SEED`
//! replays a run).
//!
//! Every mutated console must parse without a panic, in bounded time and
//! memory (at most two nodes per input line, runs of missing tests being
//! one node), render, give JSON (both schemas) that a JSON parser accepts
//! with counts that agree with the tree, and give at most
//! `MAX_SPLATS` + 1 splats.

#![allow(clippy::unwrap_used, clippy::tests_outside_test_module)] // A failed unwrap is a failed assertion.

use std::path::Path;
use std::time::{Duration, Instant};

/// xorshift64*, seeded from the clock unless `KTAP_FUZZ_SEED` is set.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Lines that stress the grammar: huge numbers and plans, deep
/// indentation, headers, directives, crash markers, invalid UTF-8.
const SPICE: [&[u8]; 16] = [
    b"KTAP version 1",
    b"TAP version 13",
    b"1..4294967295",
    b"1..1000000",
    b"ok 4294967295 x",
    b"not ok 999999 - y # SKIP",
    b"    # Subtest: deep",
    b"                                                                ok 1 z",
    b"# selftests: kvm: kvm_clock_test",
    b"Kernel panic - not syncing: Fatal exception",
    b"Oops: 0000 [#1] SMP",
    b"ok 1 a # TODO",
    b"not ok 2 b # TIMEOUT 45 seconds",
    b"\xff\xfe\x00 ok 3",
    b"[    0.000000] KTAP version 1",
    b"# 1..2",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = seed.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    for _ in 0..1 + rng.below(8) {
        let n = lines.len();
        match rng.below(7) {
            0 if n > 0 => {
                lines.remove(rng.below(n));
            }
            1 if n > 0 => {
                let l = lines[rng.below(n)].clone();
                lines.insert(rng.below(n + 1), l);
            }
            2 => lines.insert(rng.below(n + 1), SPICE[rng.below(SPICE.len())].to_vec()),
            3 if n > 0 => {
                let i = rng.below(n);
                let line = &mut lines[i];
                if !line.is_empty() {
                    let j = rng.below(line.len());
                    line[j] ^= 1 << rng.below(8);
                }
            }
            4 if n > 0 => lines.truncate(rng.below(n)),
            5 if n > 0 => {
                let i = rng.below(n);
                let indent = b" ".repeat(rng.below(200));
                lines[i].splice(0..0, indent);
            }
            _ if n > 0 => {
                let i = rng.below(n);
                lines[i].splice(0..0, b"# ".repeat(rng.below(5)));
            }
            _ => {}
        }
    }
    lines.join(&b'\n')
}

fn seeds() -> Vec<Vec<u8>> {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    for dir in [
        "ktap/tests/corpus",
        "ktap/tests/kunit-corpus",
        "kmm-boot/tests/fixtures",
    ] {
        let Ok(entries) = std::fs::read_dir(tools.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                out.push(std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

fn nodes(tests: &[ktap::Node]) -> usize {
    tests.iter().map(|t| 1 + nodes(&t.subtests)).sum()
}

/// The runs of missing tests (nodes with `last`) and the deepest level.
fn runs_and_depth(tests: &[ktap::Node], depth: usize) -> (usize, usize) {
    tests.iter().fold((0, depth), |(runs, max), t| {
        let (r, d) = runs_and_depth(&t.subtests, depth + 1);
        (runs + r + usize::from(t.last.is_some()), max.max(d))
    })
}

/// What kunit-json may take: the input's own text, and for every run of
/// missing tests up to `KUNIT_JSON_RUN` + 1 unnamed cases of four lines,
/// indented by four spaces per JSON level (two levels per group).
fn kunit_json_bound(input: usize, report: &ktap::Report) -> usize {
    let (runs, depth) = runs_and_depth(&report.tests, 0);
    let case = 4 * (4 * (2 * depth + 4) + 24);
    64 * input + 4096 + runs * (ktap::KUNIT_JSON_RUN as usize + 1) * case
}

#[test]
fn mutated_real_logs_parse_within_bounds() {
    let secs: u64 = std::env::var("KTAP_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("KTAP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("KTAP_FUZZ_SEED={seed}");
    let mut rng = Rng(seed);
    let seeds = seeds();
    assert!(seeds.len() >= 10, "{} seed logs", seeds.len());
    let start = Instant::now();
    let mut cases = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let pick = rng.below(seeds.len());
        let input = mutate(&mut rng, &seeds[pick]);
        let t = Instant::now();
        let report = ktap::parse_reader(&input[..]);
        let mut splats = kmm_boot::splat::SplatDetector::new();
        for line in input.split(|&b| b == b'\n') {
            splats.push_line(&String::from_utf8_lossy(line));
        }
        let (splats, _) = splats.finish_counted();
        let human = report.render_human();
        let mut json = Vec::new();
        report.write_json(&mut json, false).unwrap();
        let mut kunit = Vec::new();
        report.write_kunit_json(&mut kunit).unwrap();
        let took = t.elapsed();
        let lines = input.split(|&b| b == b'\n').count();
        let case = || String::from_utf8_lossy(&input).into_owned();
        // Generous: debug builds, and a kernel build on the other core.
        assert!(took < Duration::from_secs(10), "{took:?} for:\n{}", case());
        assert!(
            kunit.len() <= kunit_json_bound(input.len(), &report),
            "{} bytes of kunit JSON for:\n{}",
            kunit.len(),
            case()
        );
        assert!(
            nodes(&report.tests) <= 2 * lines + 64,
            "{} nodes for:\n{}",
            nodes(&report.tests),
            case()
        );
        assert!(human.ends_with(" skipped\n"), "{}", case());
        let v: serde_json::Value =
            serde_json::from_slice(&json).unwrap_or_else(|e| panic!("{e}:\n{}", case()));
        assert_eq!(v["failed"], report.failed());
        serde_json::from_slice::<serde_json::Value>(&kunit)
            .unwrap_or_else(|e| panic!("{e}:\n{}", case()));
        assert_eq!(report.counts.failed() > 0, report.failed(), "{}", case());
        assert!(
            splats.len() <= kmm_boot::splat::MAX_SPLATS + 1,
            "{}",
            case()
        );
        assert!(splats.len() <= lines, "{}", case());
        cases += 1;
    }
    eprintln!(
        "fuzz: {cases} cases in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    assert!(cases > 100, "only {cases} cases");
}

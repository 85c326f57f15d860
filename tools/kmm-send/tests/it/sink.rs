//! A real SMTP server on 127.0.0.1 for the tests: aiosmtpd (PyPI) running
//! `tests/fixtures/smtp_sink.py`, which stores every message it receives.
//! Also used by the kmm binary's tests (through `#[path]`).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server lives at most, whatever happens to the test.
const LIFETIME_SECS: u32 = 600;

/// The running server; stopped (and reaped) on drop.
pub struct Sink {
    child: Child,
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kmm-send/tests/fixtures/smtp_sink.py")
}

/// Whether a command runs and exits 0.
pub fn runs(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `git send-email` is installed (it prints its usage and exits
/// 129 on `-h`; without git-email, git says it is not a git command).
pub fn have_send_email() -> bool {
    Command::new("git")
        .args(["send-email", "-h"])
        .output()
        .is_ok_and(|o| !String::from_utf8_lossy(&o.stderr).contains("is not a git command"))
}

/// Why the real-client tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    if !have_send_email() {
        return Some("git send-email is not installed (apt-get install git-email)".into());
    }
    if !runs("python3", &["-c", "import aiosmtpd"]) {
        return Some("python3 with aiosmtpd is not installed (pip install aiosmtpd)".into());
    }
    None
}

impl Sink {
    /// Starts the server and waits for its port.
    pub fn start() -> Sink {
        Sink::start_with(None, 0.0)
    }

    /// Starts a server that accepts only `accept` messages (then drops
    /// every connection at the end of DATA), answering each DATA after
    /// `delay` seconds.
    pub fn start_with(accept: Option<usize>, delay: f64) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .arg(script())
            .arg(dir.path())
            .arg(LIFETIME_SECS.to_string())
            .arg(accept.map_or("-1".to_string(), |n| n.to_string()))
            .arg(delay.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("smtp_sink.py printed {line:?}, not a port")
        });
        Sink { child, dir, port }
    }

    /// The messages received so far, in order, as received.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// The envelope recipients of message `n` (0-based).
    pub fn recipients(&self, n: usize) -> Vec<String> {
        let p = self.dir.path().join(format!("{:04}.rcpt", n + 1));
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until at least `n` messages arrived (at most 60 s) and
    /// returns them.
    #[allow(dead_code)] // Used by the kmm binary's tests.
    pub fn wait_for_at_least(&self, n: usize) -> Vec<Vec<u8>> {
        let t = Instant::now();
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the SMTP server received {} messages, not {n}",
                m.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `n` messages arrived (at most 60 s) and returns them.
    pub fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        let t = Instant::now();
        loop {
            let m = self.messages();
            if m.len() >= n || t.elapsed() > Duration::from_secs(60) {
                assert_eq!(m.len(), n, "the SMTP server received {} messages", m.len());
                return m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Closing its stdin stops the server; kill it if it does not.
        drop(self.child.stdin.take());
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of header `name` in a raw message (unfolded), if any.
pub fn header(msg: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(msg).replace("\r\n", "\n");
    kmm_series::check::header_value(&text, name).or_else(|| {
        // check::header_value matches the exact case; mail is not exact.
        let lower = name.to_ascii_lowercase();
        text.lines().take_while(|l| !l.is_empty()).find_map(|l| {
            let (k, v) = l.split_once(": ")?;
            (k.to_ascii_lowercase() == lower).then(|| v.to_string())
        })
    })
}

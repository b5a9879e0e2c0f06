//! A real Prometheus server (Debian's package, installed by `cargo xtask setup`) on a free
//! loopback port, scraping the given targets every second and evaluating rules every second.
use std::{
    fs::File,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{free_port, which};

pub struct Prometheus {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Prometheus {
    /// Starts the server with its data in `dir`, scraping `targets` (host:port) as the job
    /// `hupwatch`, with the alert rules in `rules` if given; returns once it is ready.
    pub fn start(dir: &Path, targets: &[String], rules: Option<&str>) -> Self {
        Self::start_with(dir, targets, rules, "")
    }

    /// `start`, with `job` (indented YAML, like `    basic_auth: ...\n`) added to the
    /// scrape job.
    pub fn start_with(dir: &Path, targets: &[String], rules: Option<&str>, job: &str) -> Self {
        let quoted: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: hupwatch\n{job}    static_configs:\n      - targets: [{}]\n",
            quoted.join(", ")
        );
        if let Some(rules) = rules {
            std::fs::write(dir.join("rules.yml"), rules).unwrap();
            config.push_str("rule_files: ['rules.yml']\n");
        }
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let log = dir.join("prometheus.log");
        let out = File::create(&log).unwrap();
        let child = Command::new(which("prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("prometheus starts");
        let prometheus = Self {
            child,
            address,
            log,
        };
        prometheus.wait_until("Prometheus to be ready", Duration::from_secs(60), |p| {
            p.try_get("/-/ready")
                .filter(|(status, _)| *status == 200)
                .map(|_| ())
        });
        prometheus
    }

    /// The `data.result` of an instant query.
    pub fn query(&self, expr: &str) -> Vec<Value> {
        let body = self.api(&format!("/api/v1/query?query={}", encode(expr)));
        body["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{expr}: {body}"))
            .clone()
    }

    /// Alerts as Prometheus's own API reports them (pending and firing).
    pub fn alerts(&self) -> Vec<Value> {
        self.api("/api/v1/alerts")["data"]["alerts"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Names of the alerts in state `firing`, sorted, without repeats.
    pub fn firing(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .alerts()
            .iter()
            .filter(|a| a["state"] == "firing")
            .map(|a| a["labels"]["alertname"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Every target's `health` (up, down, unknown) by its scrape URL.
    pub fn target_health(&self) -> Vec<(String, String)> {
        self.api("/api/v1/targets")["data"]["activeTargets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["labels"]["instance"].as_str().unwrap().to_string(),
                    t["health"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn api(&self, path: &str) -> Value {
        let (status, body) = self
            .try_get(path)
            .unwrap_or_else(|| panic!("Prometheus does not answer {path}{}", self.log_tail()));
        let value: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
        assert!(
            status == 200 && value["status"] == "success",
            "{path}: {status} {body}"
        );
        value
    }

    fn try_get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(&self.address).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.address
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    }

    /// Polls `check` every 250 ms until it gives a value; fails after `timeout`, saying
    /// what was awaited and what Prometheus logged.
    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = check(self) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "waited {timeout:?} for {what}{}",
                self.log_tail()
            );
            thread::sleep(Duration::from_millis(250));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("; Prometheus logged:\n{tail}")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

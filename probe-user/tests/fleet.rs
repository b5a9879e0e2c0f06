//! A fleet of three machines on this one, as root. Each machine is a network namespace
//! (joined to the root namespace, "central", by a veth pair) with its own pid namespace
//! and /proc, running `hupwatch run --source proc` behind its own `--web-config` (TLS and
//! basic auth, one with client certificates too). Machine 1 is scraped by a real central
//! Prometheus over https, machine 2 pushes through a real Prometheus agent's remote_write,
//! machine 3 is scraped until its hupwatch is stopped midway. The central server runs the
//! shipped alert rules (their `for:` shortened on a copy) and sends to a real Alertmanager
//! with the shipped alertmanager.yml, whose webhook is this test's.
//!
//! Asserted: an orphaned session holding memory arrives at the webhook once, as one
//! notification for its machine, naming the machine and the program, and its end as
//! resolved; the stopped machine raises HupwatchDown and nothing more about its sessions
//! (the inhibition); a silence made with amtool holds back the next one while the same
//! alert on another machine gets through. The listeners refuse a wrong or missing
//! password, plain HTTP and a client certificate from another CA; `--metrics-only` has no
//! /api/sessions; SIGHUP rereads the web config; a bad one is one line and exit 2; the
//! metrics are those of a plain loopback hupwatch.
#[path = "support/fleet.rs"]
mod fleet;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
mod support;

use std::{
    collections::BTreeSet,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use fleet::{
    Alertmanager, Central, Curl, Daemon, Machine, Pki, Received, Webhook, curl, output_within,
    remove_leftovers, wait_until,
};
use harness::Hupwatch;
use processes::named_python;
use serde_json::{Value, json};
use support::{HUPWATCH, free_port, kill, require_root, scratch_dir, unique, which};

const RULES: &str = include_str!("../../dashboards/alerts.yml");
const CENTRAL: &str = include_str!("../../deploy/fleet/prometheus.yml");
const AGENT: &str = include_str!("../../deploy/fleet/prometheus-agent.yml");
const CENTRAL_WEB: &str = include_str!("../../deploy/fleet/web-config.yml");
const ALERTMANAGER: &str = include_str!("../../deploy/fleet/alertmanager.yml");

const ORPHANS: &str = "HupwatchOrphansHoldingMemory";
/// The alert the stopped machine raises, and the one that inhibits its others.
const DOWN: &str = "HupwatchDown";
/// Alertmanager's group_interval in the test's copy: how soon a group's change (a
/// resolution, a new alert) goes out after its first notification.
const GROUP_INTERVAL: Duration = Duration::from_secs(3);
/// What the agent calls machine 2 (the `instance` its relabelling sets).
const PUSHED: &str = "machine-2.fleet.test";
/// How long a notification may take: a poll, a scrape or a push, two rule evaluations,
/// Alertmanager's group_wait. Generous for a shared 2-core machine.
const NOTIFIED_WITHIN: Duration = Duration::from_secs(30);

const SCRAPE_PASSWORD: &str = "scrape correct horse";
const AGENT_PASSWORD: &str = "agent battery staple";
const ADMIN_PASSWORD: &str = "admin tr0ub4dor";
const AUDITOR_PASSWORD: &str = "auditor after reload";

/// A session holding 64 MiB (bytes it wrote, so they are resident) and sleeping.
const HOLD_MEMORY: &str = "import time
b = bytearray(b\"x\") * (64 << 20)
time.sleep(600)";

/// `text` with `from`, which it must contain exactly once, replaced by `to`.
fn replace_once(text: &str, file: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{file} no longer says {from:?} once; the fleet test rewrites it in its copy"
    );
    text.replacen(from, to, 1)
}

/// Each line of `text` whose first word is `key` (a YAML key) given `value`, keeping its
/// indentation; fails unless there are `count` of them.
fn set_every(text: &str, file: &str, key: &str, value: &str, count: usize) -> String {
    let mut seen = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let body = line.trim_start();
            if body.starts_with(key) {
                seen += 1;
                let indent = &line[..line.len() - body.len()];
                format!("{indent}{key} {value}")
            } else {
                line.to_string()
            }
        })
        .collect();
    assert_eq!(
        seen, count,
        "{file} has {seen} `{key}` lines, the test expects {count}"
    );
    lines.join("\n") + "\n"
}

/// dashboards/alerts.yml with short holds, the shipped file untouched: every `for:` 1s,
/// HupwatchDown's 0s, and the orphans' threshold, 2 GB, 50 MB, so that a 64 MiB session
/// is enough.
///
/// HupwatchDown is also moved first, so that it is evaluated, and sent to Alertmanager,
/// before the other rules of its group. A machine that stops answering has its series
/// marked stale at the failed scrape; in the next evaluation its session alerts resolve,
/// and HupwatchDown, at once with 0s, fires. Evaluated first, it reaches Alertmanager
/// before those resolutions, which the inhibition then holds back; evaluated last, a group
/// interval falling between the two would send a resolution first.
fn test_rules() -> String {
    let file = "dashboards/alerts.yml";
    let mut alert = "";
    let mut header = String::new();
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in RULES.lines() {
        let body = line.trim_start();
        if let Some(name) = body.strip_prefix("- alert: ") {
            alert = name.trim();
            blocks.push((alert.to_string(), String::new()));
        }
        let text = if body.starts_with("for:") {
            let hold = if alert == DOWN { "0s" } else { "1s" };
            format!("{}for: {hold}\n", &line[..line.len() - body.len()])
        } else {
            format!("{line}\n")
        };
        match blocks.last_mut() {
            Some((_, block)) => block.push_str(&text),
            None => header.push_str(&text),
        }
    }
    let down = blocks
        .iter()
        .position(|(name, _)| name == DOWN)
        .unwrap_or_else(|| panic!("{file} has no {DOWN}"));
    let down = blocks.remove(down);
    blocks.insert(0, down);
    let rules = header
        + &blocks
            .into_iter()
            .map(|(_, block)| block)
            .collect::<String>();
    replace_once(
        &rules,
        file,
        "hupwatch_session_rss_bytes{verdicts=~\".*orphaned.*\"}) > 2e9",
        "hupwatch_session_rss_bytes{verdicts=~\".*orphaned.*\"}) > 5e7",
    )
}

/// deploy/fleet/alertmanager.yml with the test's webhook and short waits: group_wait 1s,
/// group_interval 3s; repeat_interval as shipped (hours), so anything sent twice is a
/// second notification, not a reminder.
fn test_alertmanager(webhook: &str) -> String {
    let file = "deploy/fleet/alertmanager.yml";
    let text = replace_once(
        ALERTMANAGER,
        file,
        "url: http://127.0.0.1:5001/hupwatch",
        &format!("url: http://{webhook}/hupwatch"),
    );
    let text = set_every(&text, file, "group_wait:", "1s", 2);
    set_every(
        &text,
        file,
        "group_interval:",
        &format!("{}s", GROUP_INTERVAL.as_secs()),
        3,
    )
}

/// Notifications for one group (alertname, instance), in arrival order.
fn group_of<'a>(received: &'a [Received], alertname: &str, instance: &str) -> Vec<&'a Value> {
    received
        .iter()
        .map(|r| &r.body)
        .filter(|n| n["groupLabels"]["alertname"] == alertname)
        .filter(|n| n["groupLabels"]["instance"] == instance)
        .collect()
}

fn statuses(notes: &[&Value]) -> Vec<String> {
    notes
        .iter()
        .map(|n| n["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Every notification received, one line each, for failure messages.
fn summary(received: &[Received], since: Instant) -> String {
    received
        .iter()
        .map(|r| match &r.error {
            Some(error) => format!("  +{:?} {}: {error}", r.at - since, r.path),
            None => format!(
                "  +{:.1?} {} {} {} ({} alerts)",
                r.at - since,
                r.body["status"].as_str().unwrap_or("?"),
                r.body["groupLabels"]["alertname"].as_str().unwrap_or("?"),
                r.body["groupLabels"]["instance"].as_str().unwrap_or("?"),
                r.body["alerts"].as_array().map_or(0, Vec::len),
            ),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Metric names in a /metrics page: the families' `# TYPE` lines and the samples'.
fn families(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(typed) => typed.split_whitespace().next(),
            None if line.starts_with('#') || line.is_empty() => None,
            None => line.split(['{', ' ']).next(),
        })
        .map(str::to_string)
        .collect()
}

/// Everything the test runs besides the machines' sessions, stopped in this order when
/// dropped: the servers first, the machines (and their namespaces) last.
struct Fleet {
    agent: Option<Daemon>,
    central: Option<Central>,
    alertmanager: Alertmanager,
    webhook: Webhook,
    machines: Vec<Machine>,
    started: Instant,
}

impl Fleet {
    fn central(&self) -> &Central {
        self.central.as_ref().expect("the central server runs")
    }

    /// What each part said last, for a failure message.
    fn report(&self) -> String {
        let mut parts: Vec<String> = self.machines.iter().map(Machine::report).collect();
        if let Some(central) = &self.central {
            parts.push(central.daemon.log_tail(15));
        }
        if let Some(agent) = &self.agent {
            parts.push(agent.log_tail(15));
        }
        parts.push(self.alertmanager.daemon.log_tail(15));
        parts.push(format!(
            "--- the webhook received:\n{}",
            summary(&self.webhook.received(), self.started)
        ));
        parts.join("\n")
    }

    /// Waits for a notification of `status` for the group (alertname, instance).
    fn notified(&self, alertname: &str, instance: &str, status: &str) -> Value {
        wait_until(
            &format!("a {status} notification of {alertname} for {instance}"),
            NOTIFIED_WITHIN,
            || {
                let received = self.webhook.received();
                group_of(&received, alertname, instance)
                    .into_iter()
                    .find(|n| n["status"] == status)
                    .cloned()
            },
            || self.report(),
        )
    }

    fn received(&self) -> Vec<Received> {
        self.webhook.received()
    }
}

/// The scratch directory, removed when the test passes and kept (its logs, configs and
/// certificates) when it fails.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("fleet: the test's files are kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The https URL of `path` on machine `m`'s hupwatch.
fn https(m: &Machine, path: &str) -> String {
    format!("https://{}:9464{path}", m.netns.machine)
}

fn assert_refused_with_401(answer: &Curl, what: &str) {
    assert_eq!(answer.status, Some(401), "{what}: {answer:?}");
    let challenge = answer.header("WWW-Authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Basic"),
        "{what}: the 401 does not ask for basic auth (WWW-Authenticate: {challenge:?}): {answer:?}"
    );
    assert!(
        !answer.body.contains("hupwatch_"),
        "{what}: the 401 carries metrics: {answer:?}"
    );
}

/// Refused by the TLS layer with the server's alert `alert` (as OpenSSL names it): no
/// HTTP response at all. With TLS 1.3 the client learns of it on its first read (curl's
/// 56), with 1.2 in the handshake (35).
fn assert_refused_by_tls(answer: &Curl, alert: &str, what: &str) {
    assert!(
        answer.status.is_none() && [35, 56].contains(&answer.exit) && answer.stderr.contains(alert),
        "{what} was not refused by TLS with \"{alert}\": {answer:?}"
    );
}

/// Plain HTTP to a TLS port gets a 400 that says to use https (as Go's exporters answer),
/// never a page.
fn assert_plain_http_refused(address: &str) {
    let mut stream = TcpStream::connect(address).expect("the TLS port accepts connections");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // One write: the listener may give up on the first bytes and close, and a second
    // write would fail on the reset. What it answered is what counts.
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(request.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.0 400")
            && text.contains("https://")
            && !text.contains("hupwatch_"),
        "plain HTTP to the TLS port {address} did not get a 400 naming https: {text:?}"
    );
}

/// The test's certificates (a .crt and a .key each): the fleet's CA, the client
/// certificate the central server shows machine 3, and one from an unrelated CA.
struct Certs {
    ca: PathBuf,
    client: PathBuf,
    intruder: PathBuf,
}

/// Starts the central Prometheus: the shipped prometheus.yml, web-config.yml and rules,
/// rewritten where they name hosts, files and intervals, scraping machines 1 and 3 and
/// listening on machine 2's side of its veth (reachable from machine 2, the agent, and
/// from here, nowhere else). Its rules file, empty for now.
fn start_central(fleet: &mut Fleet, dir: &Path, certs: &Certs) -> PathBuf {
    let central_dir = dir.join("central");
    let central_host = fleet.machines[1].netns.host.clone();
    let [m1, m3] = [0, 2].map(|i| fleet.machines[i].netns.machine.clone());
    let scraped = |m: &str| format!("{m}:9464");
    let (ca, client) = (&certs.ca, &certs.client);
    let ca_arg = ca.display().to_string();
    let file = "deploy/fleet/prometheus.yml";
    let mut config = replace_once(
        CENTRAL,
        file,
        "  scrape_interval: 30s\n  evaluation_interval: 30s\n",
        "  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
    );
    config = replace_once(
        &config,
        file,
        "targets: [\"127.0.0.1:9093\"]",
        &format!("targets: [\"{}\"]", fleet.alertmanager.address),
    );
    // Machine 3 asks for a client certificate; the others ask for none and get none.
    config = replace_once(
        &config,
        file,
        "ca_file: /etc/prometheus/hupwatch/ca.pem\n",
        &format!(
            "ca_file: {ca_arg}\n      cert_file: {}\n      key_file: {}\n",
            client.with_extension("crt").display(),
            client.with_extension("key").display()
        ),
    );
    let scrape_password = central_dir.join("scrape-password");
    std::fs::write(&scrape_password, SCRAPE_PASSWORD).unwrap();
    config = replace_once(
        &config,
        file,
        "/etc/prometheus/hupwatch/scrape-password",
        &scrape_password.display().to_string(),
    );
    std::fs::write(central_dir.join("prometheus.yml"), config).unwrap();
    // No rules until every machine has been scraped or has pushed: a first scrape can be
    // slow (a TLS handshake and a bcrypt on a busy machine) and fail, and HupwatchDown
    // would fire for it. They are loaded with a SIGHUP then.
    let rules_file = central_dir.join("alerts.yml");
    std::fs::write(&rules_file, "groups: []\n").unwrap();
    std::fs::create_dir_all(central_dir.join("targets")).unwrap();
    let targets = json!([
        {"targets": [scraped(&m1)], "labels": {"owner": "web-team"}},
        {"targets": [scraped(&m3)], "labels": {"owner": "infra"}},
    ]);
    std::fs::write(central_dir.join("targets/fleet.json"), targets.to_string()).unwrap();

    let file = "deploy/fleet/web-config.yml";
    let mut web = replace_once(
        CENTRAL_WEB,
        file,
        "/etc/prometheus/tls/prometheus.crt",
        &central_dir.join("server.crt").display().to_string(),
    );
    web = replace_once(
        &web,
        file,
        "/etc/prometheus/tls/prometheus.key",
        &central_dir.join("server.key").display().to_string(),
    );
    for (user, password) in [("agent", AGENT_PASSWORD), ("admin", ADMIN_PASSWORD)] {
        let hash = bcrypt::hash(password, 10).unwrap();
        web = set_every(&web, file, &format!("{user}:"), &hash, 1);
    }
    std::fs::write(central_dir.join("web-config.yml"), web).unwrap();

    let port = free_port();
    let mut command = Command::new(which("prometheus"));
    command
        .arg(format!(
            "--config.file={}",
            central_dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            central_dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={central_host}:{port}"))
        .arg(format!(
            "--web.config.file={}",
            central_dir.join("web-config.yml").display()
        ))
        .arg("--web.enable-remote-write-receiver")
        // Firing alerts are sent again every second rather than every minute: after the
        // reload below, Alertmanager is rediscovered a few seconds after the rules run,
        // and what fired meanwhile went nowhere.
        .arg("--rules.alert.resend-delay=1s");
    let log = central_dir.join("prometheus.log");
    fleet.central = Some(Central::new(
        Daemon::spawn("the central Prometheus", command, log),
        format!("https://{central_host}:{port}"),
        ca,
        format!("admin:{ADMIN_PASSWORD}"),
    ));

    rules_file
}

/// Starts machine 2's Prometheus agent, in machine 2: the shipped prometheus-agent.yml
/// scraping hupwatch over https on the loopback and pushing to the central server.
fn start_agent(fleet: &mut Fleet, dir: &Path, certs: &Certs) {
    let ca_arg = certs.ca.display().to_string();
    let push_url = format!("{}/api/v1/write", fleet.central().url);
    let agent_dir = dir.join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let file = "deploy/fleet/prometheus-agent.yml";
    let mut agent = replace_once(
        AGENT,
        file,
        "  scrape_interval: 30s\n",
        "  scrape_interval: 1s\n  scrape_timeout: 1s\n",
    );
    let agent_scrape_password = agent_dir.join("scrape-password");
    std::fs::write(&agent_scrape_password, SCRAPE_PASSWORD).unwrap();
    agent = replace_once(
        &agent,
        file,
        "  - job_name: hupwatch\n",
        &format!(
            "  - job_name: hupwatch\n    scheme: https\n    tls_config:\n      ca_file: {ca_arg}\n    \
             basic_auth:\n      username: prometheus\n      password_file: {}\n",
            agent_scrape_password.display()
        ),
    );
    agent = replace_once(&agent, file, "laptop-bob.example.internal", PUSHED);
    agent = replace_once(
        &agent,
        file,
        "https://prometheus.example.internal:9090/api/v1/write",
        &push_url,
    );
    agent = replace_once(&agent, file, "/etc/prometheus/central-ca.pem", &ca_arg);
    let push_password = agent_dir.join("remote-write-password");
    std::fs::write(&push_password, AGENT_PASSWORD).unwrap();
    agent = replace_once(
        &agent,
        file,
        "      password_file: /etc/prometheus/remote-write-password\n",
        &format!(
            "      password_file: {}\n    queue_config:\n      batch_send_deadline: 500ms\n",
            push_password.display()
        ),
    );
    std::fs::write(agent_dir.join("prometheus-agent.yml"), agent).unwrap();
    let mut command = fleet.machines[1].netns.exec(which("prometheus"));
    command
        // Prometheus 2.42 (Debian 12): agent mode is a feature flag (3.x: --agent).
        .arg("--enable-feature=agent")
        .arg(format!(
            "--config.file={}",
            agent_dir.join("prometheus-agent.yml").display()
        ))
        .arg(format!(
            "--storage.agent.path={}",
            agent_dir.join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:9090");
    let log = agent_dir.join("prometheus-agent.log");
    fleet.agent = Some(Daemon::spawn("machine 2's Prometheus agent", command, log));
}

/// The listeners: what machine 1 (TLS, basic auth, --metrics-only) and machine 3 (client
/// certificates too) refuse and serve; SIGHUP rereading machine 1's web config (`web`, as
/// written); a bad web config refused at start.
fn check_listeners(fleet: &Fleet, dir: &Path, certs: &Certs, web: &str, name: &str) {
    let ca_arg = certs.ca.display().to_string();
    let scrape_user = format!("prometheus:{SCRAPE_PASSWORD}");
    let (client, intruder) = (&certs.client, &certs.intruder);
    let m1_metrics = https(&fleet.machines[0], "/metrics");
    let wrong = curl(&["--cacert", &ca_arg, "-u", "prometheus:wrong", &m1_metrics]);
    assert_refused_with_401(&wrong, "a wrong password");
    let nobody = curl(&["--cacert", &ca_arg, "-u", "nobody:wrong", &m1_metrics]);
    assert_refused_with_401(&nobody, "an unknown user");
    let anonymous = curl(&["--cacert", &ca_arg, &m1_metrics]);
    assert_refused_with_401(&anonymous, "no password");
    assert_plain_http_refused(&format!("{}:9464", fleet.machines[0].netns.machine));
    let sessions = curl(&[
        "--cacert",
        &ca_arg,
        "-u",
        &scrape_user,
        &https(&fleet.machines[0], "/api/sessions"),
    ]);
    assert_eq!(
        sessions.status,
        Some(404),
        "/api/sessions with --metrics-only: {sessions:?}"
    );
    assert!(!sessions.body.contains(name), "{sessions:?}");

    let (client_crt, client_key) = (
        client.with_extension("crt").display().to_string(),
        client.with_extension("key").display().to_string(),
    );
    let (intruder_crt, intruder_key) = (
        intruder.with_extension("crt").display().to_string(),
        intruder.with_extension("key").display().to_string(),
    );
    let m3_metrics = https(&fleet.machines[2], "/metrics");
    let with_cert = |crt: &str, key: &str, user: Option<&str>, url: &str| {
        let mut args = vec!["--cacert", &ca_arg, "--cert", crt, "--key", key];
        if let Some(user) = user {
            args.extend(["-u", user]);
        }
        args.push(url);
        curl(&args)
    };
    let allowed = with_cert(&client_crt, &client_key, Some(&scrape_user), &m3_metrics);
    assert_eq!(allowed.status, Some(200), "{allowed:?}");
    assert!(
        allowed.body.contains("hupwatch_tracked_processes"),
        "{allowed:?}"
    );
    let sessions = with_cert(
        &client_crt,
        &client_key,
        Some(&scrape_user),
        &https(&fleet.machines[2], "/api/sessions"),
    );
    assert_eq!(
        sessions.status,
        Some(200),
        "/api/sessions without --metrics-only: {sessions:?}"
    );
    let document: Value = serde_json::from_str(&sessions.body)
        .unwrap_or_else(|e| panic!("/api/sessions is not JSON ({e}): {sessions:?}"));
    assert!(document["processes"].is_array(), "{document}");
    let foreign = with_cert(
        &intruder_crt,
        &intruder_key,
        Some(&scrape_user),
        &m3_metrics,
    );
    assert_refused_by_tls(
        &foreign,
        "alert unknown ca",
        "a client certificate from another CA",
    );
    let no_cert = curl(&["--cacert", &ca_arg, "-u", &scrape_user, &m3_metrics]);
    assert_refused_by_tls(
        &no_cert,
        "alert certificate required",
        "no client certificate where one is required",
    );
    let cert_only = with_cert(&client_crt, &client_key, None, &m3_metrics);
    assert_refused_with_401(&cert_only, "a client certificate without a password");

    // SIGHUP rereads the web config: a user added to machine 1's is let in.
    let auditor = format!("auditor:{AUDITOR_PASSWORD}");
    let as_auditor = || curl(&["--cacert", &ca_arg, "-u", &auditor, &m1_metrics]);
    assert_refused_with_401(&as_auditor(), "a user the web config does not have yet");
    let hash = bcrypt::hash(AUDITOR_PASSWORD, 10).unwrap();
    let reloaded = format!("{web}  auditor: {hash}\n");
    let web_file = fleet.machines[0].dir.join("web.yml");
    std::fs::write(web_file.with_extension("new"), reloaded).unwrap();
    std::fs::rename(web_file.with_extension("new"), &web_file).unwrap();
    kill(fleet.machines[0].hupwatch_pid(), libc::SIGHUP);
    wait_until(
        "the added user let in after SIGHUP",
        Duration::from_secs(10),
        || (as_auditor().status == Some(200)).then_some(()),
        || format!("{:?}\n{}", as_auditor(), fleet.machines[0].report()),
    );
    let still = curl(&["--cacert", &ca_arg, "-u", &scrape_user, &m1_metrics]);
    assert_eq!(
        still.status,
        Some(200),
        "the scrape user after the reload: {still:?}"
    );

    // A bad web config: one line naming the field, exit 2, before anything listens.
    let bad = dir.join("bad-web.yml");
    std::fs::write(&bad, "basic_auth_users:\n  prometheus: not-a-bcrypt-hash\n").unwrap();
    let out = output_within(
        Command::new(HUPWATCH).args([
            "run",
            "--source",
            "proc",
            "--listen",
            "127.0.0.1:0",
            "--web-config",
            bad.to_str().unwrap(),
        ]),
        Duration::from_secs(10),
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a bad web config: {said}");
    assert!(
        said.trim().lines().count() == 1
            && said.contains("basic_auth_users")
            && said.contains(bad.to_str().unwrap()),
        "a bad web config is not one line naming the file and the field: {said}"
    );
}

#[test]
fn a_fleet_of_three_machines_reaches_alertmanager_through_prometheus() {
    require_root();
    // Missing tools fail here, naming the one and how to get it.
    for tool in [
        "ip",
        "unshare",
        "nsenter",
        "setsid",
        "openssl",
        "curl",
        "prometheus",
        "prometheus-alertmanager",
        "amtool",
    ] {
        which(tool);
    }
    let started = Instant::now();
    remove_leftovers();
    let dir = scratch_dir("fleet");
    let _scratch = Scratch(dir.clone());
    // One program name on every machine: if a machine's /proc showed another's
    // processes, its count would say so.
    let name = unique("hwmem");
    let program = named_python(&dir, &name);
    let init = named_python(&dir, "init");

    // --- The machines, their certificates and web configs.
    let mut machines: Vec<Machine> = (1..=3).map(|n| Machine::boot(n, &dir, &init)).collect();
    let pki = Pki::new(&dir.join("pki"));
    let ca = pki.ca(&dir.join("pki/fleet-ca"), "hupwatch fleet test CA");
    let other_ca = pki.ca(&dir.join("pki/other-ca"), "an unrelated CA");
    let certs = Certs {
        ca: ca.clone(),
        client: dir.join("pki/central-client"),
        intruder: dir.join("pki/intruder"),
    };
    pki.client(&certs.client, &ca, "central prometheus");
    pki.client(&certs.intruder, &other_ca, "intruder");
    let central_dir = dir.join("central");
    std::fs::create_dir_all(&central_dir).unwrap();
    let central_host = &machines[1].netns.host;
    pki.server(&central_dir.join("server"), &ca, &[central_host]);

    let scrape_hash = bcrypt::hash(SCRAPE_PASSWORD, 10).unwrap();
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let users = format!("basic_auth_users:\n  prometheus: {scrape_hash}\n");
    let web_configs = [
        format!("{tls}  min_version: TLS12\n{users}"),
        format!("{tls}{users}"),
        format!(
            "{tls}  client_ca_file: clients-ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n{users}"
        ),
    ];
    for (m, web) in machines.iter().zip(&web_configs) {
        pki.server(&m.dir.join("server"), &ca, &[&m.netns.machine, "127.0.0.1"]);
        std::fs::write(m.dir.join("web.yml"), web).unwrap();
    }
    std::fs::copy(&ca, machines[2].dir.join("clients-ca.crt")).unwrap();

    // --- hupwatch on each: machine 1 serves /metrics only, on every address of its
    // namespace; machine 2 on its loopback (the default), for its agent; machine 3 on
    // every address, with client certificates.
    for m in &mut machines {
        let web = m.dir.join("web.yml").display().to_string();
        let mut args = vec![
            "run",
            "--source",
            "proc",
            "--poll-interval",
            "250ms",
            "--match",
            &name,
            "--web-config",
            &web,
        ];
        match m.n {
            1 => args.extend(["--listen", "0.0.0.0:9464", "--metrics-only"]),
            3 => args.extend(["--listen", "0.0.0.0:9464"]),
            _ => {}
        }
        m.start_hupwatch(&args);
    }
    // The same hupwatch, plain, on the loopback here: the metrics to compare with.
    let plain = Hupwatch::run(&[
        "--source",
        "proc",
        "--poll-interval",
        "250ms",
        "--match",
        &name,
    ]);

    let webhook = Webhook::start();
    let am_dir = dir.join("alertmanager");
    std::fs::create_dir_all(&am_dir).unwrap();
    let am_config = am_dir.join("alertmanager.yml");
    std::fs::write(&am_config, test_alertmanager(&webhook.address.to_string())).unwrap();
    let alertmanager = Alertmanager::start(&am_config, &am_dir);
    for m in &mut machines {
        m.wait_ready();
    }
    let mut fleet = Fleet {
        agent: None,
        central: None,
        alertmanager,
        webhook,
        machines,
        started,
    };
    let [m1, m3] = [0, 2].map(|i| fleet.machines[i].netns.machine.clone());
    let scraped = |m: &str| format!("{m}:9464");
    let ca_arg = ca.display().to_string();
    let scrape_user = format!("prometheus:{SCRAPE_PASSWORD}");

    // --- The right credentials get what a plain loopback hupwatch serves (before any
    // session exists: the plain one here would see every machine's).
    let over_tls = curl(&[
        "--cacert",
        &ca_arg,
        "-u",
        &scrape_user,
        &https(&fleet.machines[0], "/metrics"),
    ]);
    assert_eq!(over_tls.status, Some(200), "{over_tls:?}");
    let expected = families(&plain.http_get("/metrics"));
    assert!(
        expected.contains("hupwatch_tracked_processes"),
        "{expected:?}"
    );
    assert_eq!(
        families(&over_tls.body),
        expected,
        "the metrics over TLS and basic auth differ from a plain hupwatch's"
    );
    plain.stop();

    // --- The sessions: two on machine 1 (one notification for both), one on machine 3.
    for m in [0, 0, 2] {
        fleet.machines[m].start_orphan(&program, HOLD_MEMORY);
    }

    let rules_file = start_central(&mut fleet, &dir, &certs);
    start_agent(&mut fleet, &dir, &certs);
    // --- The listeners, while the servers start.
    check_listeners(&fleet, &dir, &certs, &web_configs[0], &name);

    // --- Every machine reporting: 1 and 3 scraped, 2 pushed, and each sees only itself.
    wait_until(
        "the central Prometheus to be ready",
        Duration::from_secs(60),
        || {
            fleet.central().daemon.assert_running();
            fleet.central().ready().then_some(())
        },
        || fleet.report(),
    );
    let mut instances = wait_until(
        "up == 1 for all three machines",
        Duration::from_secs(30),
        || {
            let up = fleet.central().query("up{job=\"hupwatch\"}");
            (up.len() == 3 && up.iter().all(|(_, v)| *v == 1.0)).then(|| {
                up.iter()
                    .map(|(labels, _)| labels["instance"].as_str().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
            })
        },
        || fleet.report(),
    );
    instances.sort();
    let mut expected = vec![scraped(&m1), scraped(&m3), PUSHED.to_string()];
    expected.sort();
    assert_eq!(instances, expected, "the machines reporting");
    // Now the rules, with a reload.
    std::fs::write(&rules_file, test_rules()).unwrap();
    fleet.central().daemon.signal(libc::SIGHUP);
    wait_until(
        "the central Prometheus to load the rules and find Alertmanager again",
        Duration::from_secs(20),
        || {
            let central = fleet.central();
            let groups = central.api("/api/v1/rules", &[])["groups"].clone();
            let rules = groups[0]["rules"].as_array().map_or(0, Vec::len);
            let managers = central.api("/api/v1/alertmanagers", &[])["activeAlertmanagers"]
                .as_array()
                .map_or(0, Vec::len);
            (rules == RULES.matches("- alert: ").count() && managers == 1).then_some(())
        },
        || fleet.report(),
    );
    // Machine 2 is not scraped by the central server: it only pushes.
    assert_eq!(
        fleet.central().targets(),
        [
            (scraped(&m1), "up".to_string()),
            (scraped(&m3), "up".to_string())
        ]
    );
    let tracked = format!("hupwatch_tracked_processes{{group=\"{name}\"}}");
    wait_until(
        "each machine to count its own sessions only (2, 0, 1)",
        Duration::from_secs(20),
        || {
            let counts = fleet.central().query(&tracked);
            let of = |instance: &str| {
                counts
                    .iter()
                    .find(|(labels, _)| labels["instance"] == instance)
                    .map(|(_, v)| *v)
            };
            (of(&scraped(&m1)) == Some(2.0)
                && of(PUSHED) == Some(0.0)
                && of(&scraped(&m3)) == Some(1.0))
            .then_some(())
        },
        || format!("{:?}\n{}", fleet.central().query(&tracked), fleet.report()),
    );

    // --- Orphaned sessions holding memory: one notification per machine.
    let first = fleet.notified(ORPHANS, &scraped(&m1), "firing");
    let alerts = first["alerts"].as_array().unwrap();
    assert_eq!(
        alerts.len(),
        1,
        "two sessions on one machine are one alert: {first}"
    );
    assert_eq!(
        first["groupLabels"],
        json!({"alertname": ORPHANS, "instance": scraped(&m1)})
    );
    let alert = &alerts[0];
    for (label, value) in [
        ("severity", "critical"),
        ("owner", "web-team"),
        ("job", "hupwatch"),
        ("instance", scraped(&m1).as_str()),
    ] {
        assert_eq!(alert["labels"][label], value, "{label}: {alert}");
    }
    let says =
        |alert: &Value, key: &str| alert["annotations"][key].as_str().unwrap_or("").to_string();
    assert!(says(alert, "summary").contains(&scraped(&m1)), "{alert}");
    let description = says(alert, "description");
    assert!(
        description.contains(&scraped(&m1)) && description.contains(&name),
        "the description does not name the machine and the program: {description}"
    );
    assert_eq!(
        says(alert, "runbook_url"),
        "docs/runbook.md#hupwatchorphansholdingmemory"
    );
    let on_m3 = fleet.notified(ORPHANS, &scraped(&m3), "firing");
    assert_eq!(on_m3["alerts"][0]["labels"]["owner"], "infra", "{on_m3}");
    assert!(
        says(&on_m3["alerts"][0], "description").contains(&name),
        "{on_m3}"
    );

    // --- Machine 3 stops; machine 1's sessions end.
    let status = fleet.machines[2].stop_hupwatch();
    assert!(
        status.success(),
        "hupwatch on machine 3 exited with {status} on SIGTERM"
    );
    let m1_sessions = fleet.machines[0].pids_named(&name);
    assert_eq!(
        m1_sessions.len(),
        2,
        "machine 1's sessions: {m1_sessions:?}"
    );
    for pid in m1_sessions {
        kill(pid, libc::SIGKILL);
    }
    let resolved = fleet.notified(ORPHANS, &scraped(&m1), "resolved");
    assert_eq!(resolved["alerts"][0]["status"], "resolved", "{resolved}");
    let down = fleet.notified(DOWN, &scraped(&m3), "firing");
    assert_eq!(down["alerts"].as_array().map(Vec::len), Some(1), "{down}");
    assert_eq!(down["alerts"][0]["labels"]["owner"], "infra", "{down}");
    assert!(
        says(&down["alerts"][0], "summary").contains(&scraped(&m3)),
        "{down}"
    );
    // Machine 3's session alert resolved in Prometheus when its series went stale; while
    // HupwatchDown fires for it, that resolution is held back. Without the inhibition it
    // would go out at the group's next interval.
    let down_at = fleet
        .received()
        .iter()
        .rev()
        .find(|r| r.body == down)
        .unwrap()
        .at;
    thread::sleep(
        (down_at + GROUP_INTERVAL + Duration::from_millis(1500))
            .saturating_duration_since(Instant::now()),
    );
    let received = fleet.received();
    assert_eq!(
        statuses(&group_of(&received, ORPHANS, &scraped(&m3))),
        ["firing"],
        "machine 3's session alert was notified again while it was down:\n{}",
        summary(&received, started)
    );
    assert_eq!(
        statuses(&group_of(&received, ORPHANS, &scraped(&m1))),
        ["firing", "resolved"],
        "machine 1's session alert, once and its end:\n{}",
        summary(&received, started)
    );

    // --- A silence for machine 1's next one; the same alert on machine 2 is the control.
    let silence = fleet.alertmanager.silence(&[
        &format!("alertname={ORPHANS}"),
        &format!("instance={}", scraped(&m1)),
    ]);
    fleet.machines[0].start_orphan(&program, HOLD_MEMORY);
    fleet.machines[1].start_orphan(&program, HOLD_MEMORY);
    let pushed = fleet.notified(ORPHANS, PUSHED, "firing");
    let alert = &pushed["alerts"][0];
    assert_eq!(alert["labels"]["owner"], "bob", "{pushed}");
    assert!(
        says(alert, "description").contains(PUSHED) && says(alert, "description").contains(&name),
        "the pushed machine's alert does not name it and the program: {pushed}"
    );
    // Machine 1's alert reached Alertmanager, which holds it back for the silence.
    let m1_alert =
        |a: &&Value| a["labels"]["alertname"] == ORPHANS && a["labels"]["instance"] == scraped(&m1);
    let held = wait_until(
        "machine 1's new alert in Alertmanager",
        NOTIFIED_WITHIN,
        || fleet.alertmanager.alerts().iter().find(m1_alert).cloned(),
        || fleet.report(),
    );
    let held_since = Instant::now();
    assert_eq!(held["status"]["state"], "suppressed", "{held}");
    assert_eq!(held["status"]["silencedBy"], json!([silence]), "{held}");
    // Had the silence not held it, it would go out within group_wait (a new group) or the
    // group's next interval (the group of its first notification, still there).
    thread::sleep(
        (held_since + GROUP_INTERVAL + Duration::from_millis(1500))
            .saturating_duration_since(Instant::now()),
    );

    // --- Everything the webhook got, and nothing else.
    let received = fleet.received();
    let report = summary(&received, started);
    assert!(
        received
            .iter()
            .all(|r| r.error.is_none() && r.path == "/hupwatch"),
        "the webhook got something else than notifications:\n{report}"
    );
    let mut got: Vec<(String, String, String)> = received
        .iter()
        .map(|r| {
            let label = |k: &str| r.body["groupLabels"][k].as_str().unwrap_or("").to_string();
            (
                label("alertname"),
                label("instance"),
                r.body["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    let mut expected: Vec<(String, String, String)> = [
        (ORPHANS, scraped(&m1), "firing"),
        (ORPHANS, scraped(&m1), "resolved"),
        (ORPHANS, scraped(&m3), "firing"),
        (DOWN, scraped(&m3), "firing"),
        (ORPHANS, PUSHED.to_string(), "firing"),
    ]
    .into_iter()
    .map(|(a, i, s)| (a.to_string(), i, s.to_string()))
    .collect();
    expected.sort();
    assert_eq!(got, expected, "the notifications:\n{report}");

    for m in [0, 1] {
        let status = fleet.machines[m].stop_hupwatch();
        assert!(
            status.success(),
            "hupwatch on machine {} exited with {status}",
            m + 1
        );
    }
    drop(fleet);
    eprintln!("fleet: {:.1?}", started.elapsed());
}

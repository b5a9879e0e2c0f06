//! Hostile and bad input, one table row each, through the real `hupwatch` binary: every row
//! must end with exit status 2 and exactly one line on stderr that starts with
//! `hupwatch: error:`, names the problem and says the fix; never a panic, a backtrace or a
//! usage dump. None of these loads eBPF: each fails before the programs would be loaded
//! (rows that need a missing tracepoint or kernel BTF need root and are left to
//! ebpf_faults.rs).
#[path = "support/processes.rs"]
mod processes;
mod support;

use std::{
    fs::{self, File},
    io::{Read, Write},
    net::TcpListener,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use processes::{NOBODY, as_user};
use support::HUPWATCH;

/// Longer than any row takes; only a row that unexpectedly starts hupwatch for real hits it.
const ROW_TIMEOUT: Duration = Duration::from_secs(30);

struct Row {
    args: Vec<String>,
    /// Run as nobody with no capabilities: root drops to it through setpriv, anyone else is
    /// not root already.
    nobody: bool,
    /// What the line must say is wrong.
    problem: String,
    /// What the line must say to do about it.
    fix: &'static str,
}

fn row(args: &[&str], problem: impl Into<String>, fix: &'static str) -> Row {
    Row {
        args: args.iter().map(|a| a.to_string()).collect(),
        nobody: false,
        problem: problem.into(),
        fix,
    }
}

fn as_nobody(args: &[&str], problem: impl Into<String>, fix: &'static str) -> Row {
    Row {
        nobody: true,
        ..row(args, problem, fix)
    }
}

const HELP: &str = "see `hupwatch --help`";
const RECORDING: &str = "the file must hold one `hupwatch trace --json` event per line";
const CAPTURE: &str = "capture it with dtrace/hupwatch.d (see dtrace/FORMAT.md)";

/// The files and servers the rows point at, set up once.
struct Fixtures {
    dir: PathBuf,
    /// Held for the whole test so its port stays busy.
    _busy: TcpListener,
    busy: String,
    /// Answer every request with 404, with a 200 that is not JSON, and with bytes that are
    /// not HTTP.
    not_found: String,
    not_json: String,
    not_http: String,
}

impl Fixtures {
    fn new() -> Self {
        let dir = support::scratch_dir("bad-input");
        let write = |name: &str, bytes: &[u8]| fs::write(dir.join(name), bytes).unwrap();
        write("empty.jsonl", b"");
        let fork = r#"{"event":"fork","ppid":1,"time_ns":5,"pid":7,"comm":"x"}"#;
        write(
            "truncated.jsonl",
            format!("{fork}\n{}", &fork[..fork.len() / 2]).as_bytes(),
        );
        write(
            "foreign.jsonl",
            b"{\"level\":\"info\",\"msg\":\"started\"}\n",
        );
        write(
            "teleport.jsonl",
            format!("{fork}\n{}\n", fork.replace("fork", "teleport")).as_bytes(),
        );
        write(
            "negative.jsonl",
            fork.replace("\"time_ns\":5", "\"time_ns\":-5").as_bytes(),
        );
        write("prose.jsonl", b"this is not JSON at all\n");
        write("unclosed.jsonl", b"{\"event\":\"fork\"\n");
        write(
            "garbage.bin",
            &(0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect::<Vec<_>>(),
        );
        write(
            "long-line.jsonl",
            &[vec![b'a'; (1 << 20) + 10], vec![b'\n']].concat(),
        );
        write("headless.txt", b"fork 1732190000000000000 43 42 4:bash\n");
        write("version2.txt", b"hupwatch-dtrace 2\nfork 1 43 42 4:bash\n");
        write("json-not-dtrace.txt", format!("{fork}\n").as_bytes());
        fs::create_dir_all(dir.join("a-directory")).unwrap();
        for locked in ["locked.jsonl", "locked.txt"] {
            write(locked, b"");
            fs::set_permissions(dir.join(locked), fs::Permissions::from_mode(0o000)).unwrap();
        }
        // Only nobody has to get through the directory to find the locked files unreadable.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();

        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        Self {
            busy: busy.local_addr().unwrap().to_string(),
            _busy: busy,
            not_found: serve(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"),
            not_json: serve(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\nhello there\n"),
            not_http: serve(b"SSH-2.0-OpenSSH_9.2p1\r\n"),
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }
}

/// A server on a free loopback port that reads each request's head, answers `reply` and
/// closes; its thread ends with the test binary.
fn serve(reply: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && matches!(stream.read(&mut byte), Ok(1)) {
                head.push(byte[0]);
            }
            let _ = stream.write_all(reply);
        }
    });
    address
}

fn rows(f: &Fixtures) -> Vec<Row> {
    let p = |name| f.path(name);
    vec![
        // Flags and subcommands: clap's first line, pointing at --help.
        row(
            &["trace", "--frobnicate"],
            "unexpected argument '--frobnicate'",
            HELP,
        ),
        row(
            &["trace", "--match"],
            "a value is required for '--match <NAME>'",
            HELP,
        ),
        row(
            &["frobnicate"],
            "unrecognized subcommand 'frobnicate'",
            HELP,
        ),
        row(
            &["trace", "--source", "kprobes"],
            "invalid value 'kprobes' for '--source <SOURCE>'",
            "use one of: ebpf, dtrace",
        ),
        row(
            &["trace", "--mach", "bash"],
            "unexpected argument '--mach'",
            "did you mean --match?",
        ),
        row(
            &["run", "--max-session-series", "100000"],
            "100000 is not in 0..=10000",
            HELP,
        ),
        // Sizes.
        row(
            &["run", "--rss-growth", "12XB"],
            "unknown size unit \"XB\" in \"12XB\"",
            "use B, KiB, MiB, GiB or TiB",
        ),
        // A lone `-1` reaches the size parser rather than being taken for a flag.
        row(
            &["run", "--rss-growth", "-1"],
            "invalid value '-1' for '--rss-growth <SIZE>'",
            "write it like 256MiB",
        ),
        row(
            &["run", "--rss-growth=-1"],
            "\"-1\" is not a size",
            "write it like 256MiB",
        ),
        row(
            &["run", "--rss-growth", "99999999999999999999GiB"],
            "size \"99999999999999999999GiB\" is too large",
            "write it like 256MiB or 1GiB",
        ),
        row(
            &["run", "--rss-growth", "0"],
            "invalid value '0' for '--rss-growth <SIZE>'",
            "must be larger than zero",
        ),
        row(
            &["trace", "--rss-step", "12parsecs"],
            "unknown size unit \"parsecs\"",
            "use B, KiB, MiB, GiB or TiB",
        ),
        row(
            &["trace", "--ring-buffer-size", "5000"],
            "invalid value '5000' for '--ring-buffer-size <SIZE>'",
            "must be a power of two from 4KiB to 1GiB, like 8MiB",
        ),
        row(
            &["trace", "--ring-buffer-size", "2KiB"],
            "invalid value '2KiB' for '--ring-buffer-size <SIZE>'",
            "must be a power of two from 4KiB to 1GiB, like 8MiB",
        ),
        row(
            &["run", "--ring-buffer-size", "2GiB"],
            "invalid value '2GiB' for '--ring-buffer-size <SIZE>'",
            "must be a power of two from 4KiB to 1GiB, like 8MiB",
        ),
        // Durations.
        row(
            &["run", "--hup-grace", "10x"],
            "unknown duration unit \"x\" in \"10x\"",
            "use ms, s, m, h or d",
        ),
        row(
            &["run", "--hup-grace", "0s"],
            "invalid value '0s' for '--hup-grace <DURATION>'",
            "must be longer than zero",
        ),
        row(
            &["run", "--hup-grace", "99999999999999999999h"],
            "duration \"99999999999999999999h\" is too long",
            "write it like 500ms, 10s, 30m or 2h",
        ),
        row(
            &["run", "--rss-window", ""],
            "\"\" is not a duration",
            "write it like 500ms, 10s, 30m or 2h",
        ),
        row(
            &["run", "--rss-window", "forever"],
            "\"forever\" is not a duration",
            "write it like 500ms, 10s, 30m or 2h",
        ),
        row(
            &["trace", "--rss-interval", "soon"],
            "\"soon\" is not a duration",
            "write it like 500ms, 10s, 30m or 2h",
        ),
        row(
            &["trace", "--rss-interval", "0s"],
            "invalid value '0s' for '--rss-interval <DURATION>'",
            "must be longer than zero",
        ),
        // 0s is allowed: it turns PSS off.
        row(
            &["run", "--pss-interval", "-1m"],
            "invalid value '-1m' for '--pss-interval <DURATION>'",
            "write it like 500ms, 10s, 30m or 2h",
        ),
        // Matching.
        row(
            &["trace", "--match-cmdline", "(claude"],
            "--match-cmdline \"(claude\" is not a valid regular expression (error: unclosed group)",
            "escape special characters",
        ),
        row(
            &["trace", "--match-cmdline", "a{1000}{1000}"],
            "--match-cmdline \"a{1000}{1000}\" is too big",
            "use smaller repetition counts",
        ),
        row(
            &["trace", "--pid", "0"],
            "invalid value '0' for '--pid <PID>'",
            "like --pid 4242",
        ),
        row(
            &["trace", "--pid", "abc"],
            "invalid value 'abc' for '--pid <PID>'",
            "like --pid 4242",
        ),
        row(
            &["trace", "--match", ""],
            "--match needs a process name, got an empty one",
            "like --match bash",
        ),
        row(
            &["sessions", "--pid", "4000000000"],
            "--pid 4000000000: no such process",
            "list processes with `ps -e`",
        ),
        // --listen.
        row(
            &["run", "--listen", "localhost-ish"],
            "--listen \"localhost-ish\": not an address",
            "like 127.0.0.1:9464",
        ),
        row(
            &["run", "--listen", "127.0.0.1:99999"],
            "--listen \"127.0.0.1:99999\": not an address",
            "like 127.0.0.1:9464",
        ),
        row(
            &["run", "--listen", &f.busy],
            format!("cannot listen on {}: address already in use", f.busy),
            "choose another with --listen ADDR",
        ),
        // TEST-NET-1 (RFC 5737): no machine has it.
        row(
            &["run", "--listen", "192.0.2.1:9464"],
            "cannot listen on 192.0.2.1:9464: this machine has no such address",
            "with --listen ADDR",
        ),
        // --replay: files that cannot be read, and files that are not recordings.
        row(
            &["run", "--replay", "/nonexistent/trace.jsonl"],
            "--replay /nonexistent/trace.jsonl: cannot read it (No such file",
            "give a file written by `hupwatch trace --json`",
        ),
        row(
            &["trace", "--replay", "/nonexistent/a\nb.jsonl"],
            "--replay /nonexistent/a b.jsonl: cannot read it",
            "give a file written by `hupwatch trace --json`",
        ),
        row(
            &["trace", "--replay", &p("a-directory")],
            "cannot read it (it is a directory)",
            "give a file written by `hupwatch trace --json`",
        ),
        as_nobody(
            &["trace", "--replay", &p("locked.jsonl")],
            "cannot read it (Permission denied",
            "give a file written by `hupwatch trace --json`",
        ),
        row(
            &["run", "--replay", &p("truncated.jsonl")],
            "truncated.jsonl:2: the last line is cut off",
            RECORDING,
        ),
        row(
            &["run", "--replay", &p("foreign.jsonl")],
            "foreign.jsonl:1: not a hupwatch event (missing field",
            RECORDING,
        ),
        row(
            &["run", "--replay", &p("teleport.jsonl")],
            "teleport.jsonl:2: not a hupwatch event (unknown variant `teleport`",
            RECORDING,
        ),
        row(
            &["run", "--replay", &p("negative.jsonl")],
            "negative.jsonl:1: not a hupwatch event (invalid value: integer `-5`",
            RECORDING,
        ),
        row(
            &["run", "--replay", &p("prose.jsonl")],
            "prose.jsonl:1: not JSON",
            RECORDING,
        ),
        row(
            &["run", "--replay", &p("unclosed.jsonl")],
            "unclosed.jsonl:1: not JSON (EOF while parsing an object)",
            RECORDING,
        ),
        row(
            &["run", "--replay", &p("garbage.bin")],
            "garbage.bin:1: not UTF-8",
            RECORDING,
        ),
        row(
            &["trace", "--replay", &p("long-line.jsonl")],
            "long-line.jsonl:1: line longer than 1 MiB",
            RECORDING,
        ),
        row(
            &["run", "--replay", &p("empty.jsonl"), "--match", "x"],
            "--replay takes the processes the recording holds",
            "drop --match, --match-cmdline and --pid",
        ),
        // --dtrace-input: a damaged record is skipped with a warning (dtrace/FORMAT.md, and
        // `damaged_dtrace_records_are_counted_not_fatal` below); a file that is not a
        // capture at all is refused.
        row(
            &["run", "--dtrace-input", &p("headless.txt")],
            "it does not start with `hupwatch-dtrace 1` but \"fork 1732190000000000000 43 42 4:bash\"",
            CAPTURE,
        ),
        row(
            &["trace", "--dtrace-input", &p("version2.txt")],
            "it does not start with `hupwatch-dtrace 1` but \"hupwatch-dtrace 2\"",
            CAPTURE,
        ),
        row(
            &["trace", "--dtrace-input", &p("empty.jsonl")],
            "it does not start with `hupwatch-dtrace 1` but \"\"",
            CAPTURE,
        ),
        row(
            &["run", "--dtrace-input", &p("garbage.bin")],
            "it does not start with `hupwatch-dtrace 1`",
            CAPTURE,
        ),
        row(
            &["trace", "--dtrace-input", &p("json-not-dtrace.txt")],
            "it does not start with `hupwatch-dtrace 1` but \"{\\\"event\\\":\\\"fork\\\"",
            CAPTURE,
        ),
        row(
            &["run", "--dtrace-input", &p("a-directory")],
            "cannot read it (it is a directory)",
            "give a file of hupwatch's DTrace output",
        ),
        row(
            &["run", "--dtrace-input", "/nonexistent/capture.txt"],
            "cannot read it (No such file",
            "give a file of hupwatch's DTrace output",
        ),
        as_nobody(
            &["run", "--dtrace-input", &p("locked.txt")],
            "cannot read it (Permission denied",
            "give a file of hupwatch's DTrace output",
        ),
        // Privileges and the tracer this OS has. Without --source, nobody falls back to
        // polling (tests/proc_source.rs); asked for, eBPF without root is an error.
        as_nobody(
            &["trace", "--source", "ebpf"],
            "loading eBPF programs needs root",
            "run it with sudo",
        ),
        as_nobody(
            &["run", "--source", "ebpf", "--listen", "127.0.0.1:0"],
            "loading eBPF programs needs root",
            "run it with sudo",
        ),
        row(
            &["trace", "--source", "dtrace"],
            "--source dtrace runs macOS's DTrace",
            "on Linux use --source ebpf (the default)",
        ),
        row(
            &["run", "--source", "dtrace", "--listen", "127.0.0.1:0"],
            "--source dtrace runs macOS's DTrace",
            "on Linux use --source ebpf (the default)",
        ),
        as_nobody(
            &["trace", "--source", "dtrace"],
            "--source dtrace runs macOS's DTrace",
            "on Linux use --source ebpf (the default)",
        ),
        as_nobody(
            &["run", "--source", "dtrace", "--listen", "127.0.0.1:0"],
            "--source dtrace runs macOS's DTrace",
            "on Linux use --source ebpf (the default)",
        ),
        // selftest: its --source is run's, refused the same way (its test processes,
        // started first, are ended again).
        row(
            &["selftest", "--source", "kprobes"],
            "invalid value 'kprobes' for '--source <SOURCE>'",
            "use one of: ebpf, dtrace, proc",
        ),
        row(
            &["selftest", "--source", "dtrace"],
            "--source dtrace runs macOS's DTrace",
            "on Linux use --source ebpf (the default)",
        ),
        as_nobody(
            &["selftest", "--source", "ebpf"],
            "loading eBPF programs needs root",
            "run it with sudo",
        ),
        row(
            &["selftest", "--jsn"],
            "unexpected argument '--jsn'",
            "did you mean --json?",
        ),
        // --alerts-file.
        row(
            &[
                "run",
                "--replay",
                &p("empty.jsonl"),
                "--alerts-file",
                "/nonexistent/dir/alerts.jsonl",
            ],
            "--alerts-file /nonexistent/dir/alerts.jsonl: cannot open it for appending (No such file",
            "choose a writable path",
        ),
        row(
            &[
                "run",
                "--replay",
                &p("empty.jsonl"),
                "--alerts-file",
                &p("a-directory"),
            ],
            "cannot open it for appending (Is a directory",
            "choose a writable path",
        ),
        // sessions --from.
        row(
            &["sessions", "--from", "http://127.0.0.1:1"],
            "cannot fetch http://127.0.0.1:1/api/sessions: connection refused",
            "that hupwatch is serving there (--listen)",
        ),
        row(
            &["sessions", "--from", "ftp://127.0.0.1:9464"],
            "\"ftp://127.0.0.1:9464\": only http:// and unix: are supported",
            "like http://127.0.0.1:9464",
        ),
        // The local API's socket and its clients.
        row(
            &["sessions", "--from", "unix:api.sock"],
            "a socket is an absolute path",
            "like unix:/run/hupwatch/api.sock",
        ),
        row(
            &["sessions", "--from", "unix:/nonexistent/hupwatch/api.sock"],
            "cannot fetch unix:/nonexistent/hupwatch/api.sock: no hupwatch serves it",
            "start `hupwatch run` as root",
        ),
        row(
            &["reap", "--from", "http://127.0.0.1:1", "--yes"],
            "--from http://127.0.0.1:1: as root, reap --yes acts only on what root's own hupwatch says through its socket",
            "use --from unix:/run/hupwatch/api.sock",
        ),
        row(
            &["run", "--user", "no-such-user-hw"],
            "--user no-such-user-hw: no such user",
            "create it (useradd --system",
        ),
        as_nobody(
            &["run", "--user", "nobody"],
            "--user nobody: hupwatch switches user after attaching, which needs it started as root",
            "run it with sudo or drop --user",
        ),
        row(
            &["run", "--dry-run"],
            "the following required arguments were not provided",
            HELP,
        ),
        row(
            &["run", "--reap-before", "0s"],
            "invalid value '0s' for '--reap-before <DURATION>'",
            HELP,
        ),
        row(
            &["run", "--api-group", "no-such-group-hw"],
            "--api-group no-such-group-hw: no such group",
            "groupadd no-such-group-hw",
        ),
        row(
            &["run", "--listen", "127.0.0.1:0", "--api-socket", "api.sock"],
            "--api-socket api.sock: give an absolute path",
            "like /run/hupwatch/api.sock",
        ),
        row(
            &[
                "run",
                "--listen",
                "127.0.0.1:0",
                "--api-socket",
                "/tmp/api.sock",
            ],
            "--api-socket /tmp/api.sock: its folder /tmp belongs to uid 0 with mode 1777",
            "use a folder only you can write",
        ),
        // `.invalid` never resolves (RFC 6761).
        row(
            &["sessions", "--from", "http://no-such-host.invalid:9464"],
            "cannot fetch http://no-such-host.invalid:9464/api/sessions",
            "check the host and port",
        ),
        row(
            &["sessions", "--from", &f.not_found],
            "the server answered 404 Not Found",
            "give the --listen address of `hupwatch run`",
        ),
        row(
            &["sessions", "--from", &f.not_json],
            "the answer is not hupwatch's sessions document",
            "point --from at the --listen address",
        ),
        row(
            &["sessions", "--from", &f.not_http],
            format!("cannot fetch {}/api/sessions", f.not_http),
            "check that it is the --listen address of a running `hupwatch run`",
        ),
        row(
            &["sessions", "--from", "http://127.0.0.1:1", "--match", "x"],
            "cannot be used with",
            HELP,
        ),
        // reap: it signals processes, so nothing vague may pass.
        row(
            &["reap", "--verdict", "zombie"],
            "unknown verdict \"zombie\"",
            "use one of detached, hangup_ignored",
        ),
        row(
            &["reap", "--signal", "FOO"],
            "unknown signal \"FOO\"",
            "use a name like TERM, HUP or KILL",
        ),
        row(
            &["reap", "--grace", "-1s"],
            "\"-1s\" is not a duration",
            "write it like 500ms",
        ),
        row(
            &["reap", "--older-than", "yesterday"],
            "\"yesterday\" is not a duration",
            "write it like 500ms",
        ),
        row(
            &["reap", "--min-rss", "1ZB"],
            "unknown size unit \"ZB\"",
            "use B, KiB, MiB",
        ),
        row(
            &["reap", "--pid", "0"],
            "invalid value '0' for '--pid <PID>'",
            "like --pid 4242",
        ),
        row(
            &["reap", "--from", "http://127.0.0.1:1"],
            "cannot fetch http://127.0.0.1:1/api/sessions: connection refused",
            "that hupwatch is serving there (--listen)",
        ),
    ]
}

/// What is wrong with one row's outcome, if anything.
fn check(row: &Row, status: Option<i32>, stdout: &[u8], stderr: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut expect = |ok: bool, what: &str| {
        if !ok {
            wrong.push(what.to_string());
        }
    };
    expect(status == Some(2), &format!("exit status {status:?}, not 2"));
    expect(
        stderr.ends_with('\n') && stderr.lines().count() == 1,
        "not exactly one line",
    );
    expect(
        stderr.starts_with("hupwatch: error: "),
        "no `hupwatch: error: ` at the start",
    );
    expect(
        stderr.contains(&row.problem),
        &format!("does not name the problem {:?}", row.problem),
    );
    expect(
        stderr.contains(row.fix),
        &format!("does not say the fix {:?}", row.fix),
    );
    for never in [
        "panicked",
        "backtrace",
        "RUST_BACKTRACE",
        "Usage:",
        "\nerror",
    ] {
        expect(!stderr.contains(never), &format!("contains {never:?}"));
    }
    expect(
        stderr.matches("(os error").count() <= 1,
        "says the same OS error twice",
    );
    expect(
        !stderr.trim_end_matches('\n').chars().any(char::is_control),
        "holds raw control characters",
    );
    expect(stdout.is_empty(), "printed something on stdout");
    wrong
}

fn run_row(row: &Row, out_dir: &Path, index: usize) -> (Option<i32>, Vec<u8>, String) {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut command = if row.nobody && root {
        as_user(NOBODY, HUPWATCH)
    } else {
        Command::new(HUPWATCH)
    };
    // Files, not pipes: a row that went wrong and started hupwatch for real may print
    // without end, and nothing here would be reading a pipe.
    let stdout_path = out_dir.join(format!("row-{index}.stdout"));
    let stderr_path = out_dir.join(format!("row-{index}.stderr"));
    let mut child = command
        .args(&row.args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .expect("hupwatch starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > ROW_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let stdout = fs::read(&stdout_path).unwrap();
    let stderr = String::from_utf8_lossy(&fs::read(&stderr_path).unwrap()).into_owned();
    (status, stdout, stderr)
}

#[test]
fn every_bad_input_is_one_line_with_the_fix_and_exit_2() {
    let fixtures = Fixtures::new();
    let rows = rows(&fixtures);
    assert!(rows.len() >= 25, "{} rows", rows.len());
    let out_dir = fixtures.dir.join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let mut failures = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let (status, stdout, stderr) = run_row(row, &out_dir, index);
        let wrong = check(row, status, &stdout, &stderr);
        if !wrong.is_empty() {
            failures.push(format!(
                "{}hupwatch {:?}: {}\n    stderr: {stderr:?}",
                if row.nobody { "(as nobody) " } else { "" },
                row.args,
                wrong.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// A damaged record in a DTrace capture is skipped and counted in one warning line, as
/// dtrace/FORMAT.md says, and the rest of the capture is read: not an error.
#[test]
fn damaged_dtrace_records_are_counted_not_fatal() {
    let dir = support::scratch_dir("bad-dtrace-records");
    let exec = "exec 1732190000000000000 4242 4100 4100 -1 1732189999 950000 0 5:sleep\n";
    for (name, text, why) in [
        (
            "garbage-line.txt",
            format!("hupwatch-dtrace 1\n{exec}\u{1b}[31m garbage \u{0}\n"),
            "at line 3: unknown record kind \"\\u{1b}[31m\"",
        ),
        (
            "cut-off.txt",
            format!("hupwatch-dtrace 1\n{exec}exit 1732190009000000000 4242 1 9 5:sl"),
            "at line 3: the input ends inside a record",
        ),
        (
            "bad-length.txt",
            format!("hupwatch-dtrace 1\nfork 1 43 42 99999999999999999999:bash\n{exec}"),
            "at line 2: ",
        ),
    ] {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap();
        for command in ["run", "trace"] {
            let out = Command::new(HUPWATCH)
                .args([command, "--dtrace-input", path])
                .env("RUST_BACKTRACE", "1")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{command} {name}: {stderr}");
            let warning = format!(
                "hupwatch: warning: --dtrace-input {path}: skipped 1 malformed record(s); the first, {why}"
            );
            let first = stderr.lines().next().unwrap_or_default();
            assert!(first.starts_with(&warning), "{command} {name}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(
                !stderr.chars().any(|c| c.is_control() && c != '\n'),
                "raw control characters in {stderr:?}"
            );
            let lines = if command == "run" { 2 } else { 1 };
            assert_eq!(stderr.lines().count(), lines, "{command} {name}: {stderr}");
            if command == "trace" {
                let events = String::from_utf8_lossy(&out.stdout);
                assert!(events.contains("pid=4242 comm=sleep"), "{events}");
            }
        }
    }
}

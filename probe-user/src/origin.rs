//! Where a process came from: which program hosts the terminal it was started in (VSCode's
//! integrated terminal, iTerm2, tmux, an ssh login, a terminal emulator), decided from its
//! environment and the names of its ancestors. Pure: the host layer reads the environment,
//! the working directory and the parents, and hands them in.

/// The entries of a process's environment that tell where it was started; the rest of the
/// environment (secrets included) is never kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TerminalEnv {
    /// `TERM`, when set (possibly empty).
    pub term: Option<String>,
    /// `TERM_PROGRAM`, when set and not empty: vscode, iTerm.app, Apple_Terminal, tmux,
    /// WezTerm, ghostty...
    pub term_program: Option<String>,
    /// `TMUX`: a pane of a tmux server.
    pub tmux: bool,
    /// `STY`: a window of GNU screen.
    pub screen: bool,
    /// Some `VSCODE_*` variable: started by VSCode (or a fork of it), terminal or not.
    pub vscode: bool,
    /// `SSH_TTY`: an ssh login with a terminal.
    pub ssh_tty: bool,
    /// `SSH_CONNECTION` or `SSH_CLIENT`: started through ssh, with a terminal or not.
    pub ssh: bool,
    /// A terminal emulator that names itself in a variable of its own (`KITTY_WINDOW_ID`,
    /// `GNOME_TERMINAL_SCREEN`...), as [`terminal_program`] names it.
    pub emulator: Option<&'static str>,
    /// What names the session it was started in, exported to everything started under
    /// it ([`SESSION_MARKERS`], the first there in that order): `NAME=value`.
    pub session_marker: Option<String>,
}

/// Variables only a terminal emulator sets in its shells, and the emulator's name. The
/// names are the ones its process has, except where the terminal sets `TERM_PROGRAM`
/// (WezTerm, ghostty): then that value, so each terminal has one name however it is found.
const EMULATOR_VARIABLES: [(&str, &str); 11] = [
    ("KITTY_WINDOW_ID", "kitty"),
    ("KONSOLE_VERSION", "konsole"),
    ("GNOME_TERMINAL_SCREEN", "gnome-terminal-server"),
    ("GNOME_TERMINAL_SERVICE", "gnome-terminal-server"),
    ("ALACRITTY_WINDOW_ID", "alacritty"),
    ("ALACRITTY_SOCKET", "alacritty"),
    ("WEZTERM_PANE", "WezTerm"),
    ("XTERM_VERSION", "xterm"),
    ("TILIX_ID", "tilix"),
    ("TERMINATOR_UUID", "terminator"),
    ("GHOSTTY_RESOURCES_DIR", "ghostty"),
];

/// Variables that name one session and are inherited by everything started in it, most
/// specific first: an agent CLI's session id (Claude Code exports it to its tools and MCP
/// servers), then a terminal's window, tab or pane (iTerm2 and Apple's Terminal, Windows
/// Terminal under WSL2, kitty, WezTerm, Alacritty, a tmux pane). What ties two processes
/// together when the parents between them are gone (session trees, tracker/trees.rs).
pub const SESSION_MARKERS: [&str; 7] = [
    "CLAUDE_CODE_SESSION_ID",
    "TERM_SESSION_ID",
    "WT_SESSION",
    "KITTY_WINDOW_ID",
    "WEZTERM_PANE",
    "ALACRITTY_WINDOW_ID",
    "TMUX_PANE",
];

/// `TERM` values a single emulator sets by default: the innermost terminal sets `TERM`,
/// while the variables above leak into terminals started from inside another one.
const EMULATOR_TERMS: [(&str, &str); 6] = [
    ("xterm-kitty", "kitty"),
    ("foot", "foot"),
    ("foot-extra", "foot"),
    ("alacritty", "alacritty"),
    ("wezterm", "WezTerm"),
    ("xterm-ghostty", "ghostty"),
];

/// Process names of programs that host terminals, and the name [`terminal_program`] gives
/// them (the `TERM_PROGRAM` value where the program sets one).
const HOSTS: [(&str, &str); 31] = [
    ("tmux", "tmux"),
    ("screen", "screen"),
    ("SCREEN", "screen"),
    ("sshd", "ssh"),
    ("sshd-session", "ssh"),
    ("code", "vscode"),
    ("code-insiders", "vscode"),
    ("codium", "vscode"),
    ("cursor", "vscode"),
    ("Code Helper", "vscode"),
    ("Code Helper (Plugin)", "vscode"),
    ("Code - Insiders Helper", "vscode"),
    ("Cursor Helper", "vscode"),
    ("iTerm2", "iTerm.app"),
    ("Terminal", "Apple_Terminal"),
    ("gnome-terminal-server", "gnome-terminal-server"),
    ("kitty", "kitty"),
    ("konsole", "konsole"),
    ("xterm", "xterm"),
    ("alacritty", "alacritty"),
    ("Alacritty", "alacritty"),
    ("wezterm-gui", "WezTerm"),
    ("foot", "foot"),
    ("xfce4-terminal", "xfce4-terminal"),
    ("mate-terminal", "mate-terminal"),
    ("tilix", "tilix"),
    ("terminator", "terminator"),
    ("lxterminal", "lxterminal"),
    ("qterminal", "qterminal"),
    ("urxvt", "urxvt"),
    ("ghostty", "ghostty"),
];

/// Linux keeps 15 bytes of a process's name: `gnome-terminal-server` is `gnome-terminal-`.
const COMM_BYTES: usize = 15;

/// Most parents walked up from a process: deeper trees than this are not terminals' doing.
pub const MAX_ANCESTORS: usize = 32;

impl TerminalEnv {
    /// Picks the entries that matter out of `NAME=value` entries (a NUL-separated block
    /// split at its NULs). Entries that are not UTF-8 are read lossily.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut env = Self::default();
        for entry in entries {
            let Some(eq) = entry.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (name, value) = (&entry[..eq], &entry[eq + 1..]);
            let text = || String::from_utf8_lossy(value).into_owned();
            if let Some(rank) = SESSION_MARKERS.iter().position(|m| m.as_bytes() == name)
                && !value.is_empty()
            {
                let better = env.session_marker.as_deref().is_none_or(|held| {
                    SESSION_MARKERS
                        .iter()
                        .position(|m| held.starts_with(&format!("{m}=")))
                        .is_none_or(|held_rank| rank < held_rank)
                });
                if better {
                    env.session_marker = Some(format!(
                        "{}={}",
                        SESSION_MARKERS[rank],
                        String::from_utf8_lossy(value)
                    ));
                }
            }
            match name {
                b"TERM" => env.term = Some(text()),
                b"TERM_PROGRAM" if !value.is_empty() => env.term_program = Some(text()),
                b"TMUX" => env.tmux = true,
                b"STY" => env.screen = true,
                b"SSH_TTY" => env.ssh_tty = true,
                b"SSH_CONNECTION" | b"SSH_CLIENT" => env.ssh = true,
                _ if name.starts_with(b"VSCODE_") => env.vscode = true,
                _ => {
                    let known = EMULATOR_VARIABLES
                        .iter()
                        .find(|(variable, _)| variable.as_bytes() == name);
                    if let Some((_, emulator)) = known {
                        env.emulator.get_or_insert(emulator);
                    }
                }
            }
        }
        env
    }

    /// A NUL-separated environment block, as /proc/PID/environ holds it.
    pub fn parse_block(raw: &[u8]) -> Self {
        Self::parse(raw.split(|&b| b == 0))
    }

    /// The environment says it was started in a terminal: `TERM`, or a variable only a
    /// terminal sets in its shells. `VSCODE_*` and `SSH_CONNECTION` alone do not count:
    /// VSCode sets them in every process it starts (language servers, extension hosts) and
    /// ssh in commands it runs without a terminal.
    pub fn from_terminal(&self) -> bool {
        self.term.is_some()
            || self.term_program.is_some()
            || self.tmux
            || self.screen
            || self.ssh_tty
            || self.emulator.is_some()
    }
}

/// The program hosting the terminal a process was started in, or None when neither its
/// environment nor its ancestors (`ancestors`, nearest first, taken only as far as needed)
/// say.
///
/// The environment comes first: a process that outlived its terminal has usually lost its
/// ancestors to init, while its environment still says where it started. Within it, the
/// innermost terminal's own word (`TERM_PROGRAM`, which tmux also sets in its panes) comes
/// before what leaks into programs started from a terminal (`TMUX` in a VSCode started from
/// tmux, `VSCODE_*` in everything VSCode starts), and an ssh login comes last, as the
/// terminals above can run inside one.
pub fn terminal_program(
    env: Option<&TerminalEnv>,
    ancestors: impl IntoIterator<Item = String>,
) -> Option<String> {
    if let Some(env) = env {
        let emulator_term = env.term.as_deref().and_then(|term| {
            EMULATOR_TERMS
                .iter()
                .find(|(value, _)| *value == term)
                .map(|(_, name)| *name)
        });
        let said = env
            .term_program
            .clone()
            .or_else(|| env.tmux.then(|| "tmux".to_string()))
            .or_else(|| env.screen.then(|| "screen".to_string()))
            .or_else(|| env.vscode.then(|| "vscode".to_string()))
            .or_else(|| emulator_term.or(env.emulator).map(str::to_string))
            .or_else(|| (env.ssh_tty || env.ssh).then(|| "ssh".to_string()));
        if said.is_some() {
            return said;
        }
    }
    ancestors
        .into_iter()
        .take(MAX_ANCESTORS)
        .find_map(|name| host_named(&name))
        .map(str::to_string)
}

/// The name [`terminal_program`] gives a terminal host called `name` (a renamed process
/// like `tmux: server` by the name before its colon; a name Linux cut to 15 bytes by the
/// names it could be the start of).
fn host_named(name: &str) -> Option<&'static str> {
    let name = program_name(name);
    HOSTS
        .iter()
        .find(|(host, _)| *host == name || (name.len() == COMM_BYTES && host.starts_with(name)))
        .map(|(_, shown)| *shown)
}

/// A process's program: its name, or for a process that renamed itself to `program: what`
/// (`tmux: server`, `sshd: alice@pts/0`) the part before the colon.
pub fn program_name(comm: &str) -> &str {
    match comm.split_once(':') {
        Some((program, _)) if !program.trim().is_empty() => program.trim(),
        _ => comm,
    }
}

/// The names of `pid`'s ancestors, nearest first, looked up lazily with `parent_of` (pid
/// -> its parent and name); the walk stops at init, at a pid seen before, or after
/// [`MAX_ANCESTORS`].
pub fn ancestors(
    pid: u32,
    mut parent_of: impl FnMut(u32) -> Option<(u32, String)>,
) -> impl Iterator<Item = String> {
    let mut seen = vec![pid];
    let mut parent = parent_of(pid).map(|(ppid, _)| ppid);
    std::iter::from_fn(move || {
        let pid = parent.take()?;
        if pid <= 1 || seen.contains(&pid) || seen.len() > MAX_ANCESTORS {
            return None;
        }
        seen.push(pid);
        // One look gives the name and the next parent.
        let (ppid, name) = parent_of(pid)?;
        parent = Some(ppid);
        Some(name)
    })
}

/// Where a process came from, as its source reads it once (at its exec, or when it is
/// first seen).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub terminal_program: Option<String>,
    /// Its working directory; None when unreadable (another user's process, without root).
    pub cwd: Option<String>,
    /// Its environment says it was started in a terminal ([`TerminalEnv::from_terminal`]).
    pub from_terminal: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(entries: &[&str]) -> TerminalEnv {
        TerminalEnv::parse(entries.iter().map(|e| e.as_bytes()))
    }

    #[test]
    fn the_most_specific_session_marker_wins_whatever_the_order() {
        let e = env(&[
            "TERM_SESSION_ID=w0t1p0:AB",
            "TERM=xterm-256color",
            "CLAUDE_CODE_SESSION_ID=8a718ed2",
            "TMUX_PANE=%3",
        ]);
        assert_eq!(
            e.session_marker.as_deref(),
            Some("CLAUDE_CODE_SESSION_ID=8a718ed2")
        );
        let e = env(&["TMUX_PANE=%3", "WT_SESSION=f00"]);
        assert_eq!(e.session_marker.as_deref(), Some("WT_SESSION=f00"));
        assert_eq!(env(&["TERM=xterm", "WT_SESSION="]).session_marker, None);
    }

    fn decide(entries: &[&str], ancestors: &[&str]) -> Option<String> {
        terminal_program(Some(&env(entries)), ancestors.iter().map(|a| a.to_string()))
    }

    /// What VSCode's integrated terminal gives its shells.
    const VSCODE: [&str; 6] = [
        "TERM=xterm-256color",
        "TERM_PROGRAM=vscode",
        "TERM_PROGRAM_VERSION=1.96.2",
        "VSCODE_GIT_IPC_HANDLE=/run/user/1000/vscode-git-1a2b.sock",
        "VSCODE_INJECTION=1",
        "COLORTERM=truecolor",
    ];

    #[test]
    fn term_program_names_the_terminal_it_is_set_by() {
        assert_eq!(decide(&VSCODE, &[]).as_deref(), Some("vscode"));
        let iterm = ["TERM=xterm-256color", "TERM_PROGRAM=iTerm.app"];
        assert_eq!(decide(&iterm, &[]).as_deref(), Some("iTerm.app"));
        let apple = ["TERM_PROGRAM=Apple_Terminal", "TERM=xterm-256color"];
        assert_eq!(decide(&apple, &[]).as_deref(), Some("Apple_Terminal"));
        assert_eq!(
            decide(&["TERM_PROGRAM="], &["kitty"]).as_deref(),
            Some("kitty"),
            "an empty TERM_PROGRAM says nothing"
        );
    }

    #[test]
    fn the_innermost_terminal_wins_over_what_leaks_from_outside() {
        // tmux 3.2+ sets TERM_PROGRAM in its panes; VSCODE_* leaked from where the server
        // was started.
        let tmux_in_vscode = [
            "TERM=tmux-256color",
            "TERM_PROGRAM=tmux",
            "TMUX=/tmp/tmux-1000/default,4242,0",
            "VSCODE_GIT_IPC_HANDLE=/run/user/1000/x.sock",
        ];
        assert_eq!(decide(&tmux_in_vscode, &[]).as_deref(), Some("tmux"));
        // Older tmux leaves the outer TERM_PROGRAM: TMUX then loses to it, as it must for
        // a VSCode started from a tmux pane, whose terminals inherit TMUX.
        let vscode_from_tmux = ["TERM_PROGRAM=vscode", "TMUX=/tmp/tmux-1000/default,1,0"];
        assert_eq!(decide(&vscode_from_tmux, &[]).as_deref(), Some("vscode"));
        assert_eq!(
            decide(&["TMUX=/tmp/t,1,0", "TERM=screen"], &[]).as_deref(),
            Some("tmux")
        );
        assert_eq!(
            decide(&["STY=123.pts-0.host"], &[]).as_deref(),
            Some("screen")
        );
        // kitty started from a gnome-terminal: kitty's TERM, gnome-terminal's variable.
        let kitty = [
            "TERM=xterm-kitty",
            "GNOME_TERMINAL_SCREEN=/org/x",
            "KITTY_WINDOW_ID=1",
        ];
        assert_eq!(decide(&kitty, &[]).as_deref(), Some("kitty"));
    }

    #[test]
    fn emulators_without_term_program_are_named_by_their_own_variables() {
        for (variable, name) in [
            (
                "GNOME_TERMINAL_SCREEN=/org/gnome/Terminal/screen/1",
                "gnome-terminal-server",
            ),
            ("KONSOLE_VERSION=230804", "konsole"),
            ("XTERM_VERSION=XTerm(390)", "xterm"),
            (
                "ALACRITTY_SOCKET=/run/user/1000/Alacritty.sock",
                "alacritty",
            ),
            ("WEZTERM_PANE=0", "WezTerm"),
        ] {
            let found = decide(&["TERM=xterm-256color", variable], &[]);
            assert_eq!(found.as_deref(), Some(name), "{variable}");
        }
        assert_eq!(decide(&["TERM=foot"], &[]).as_deref(), Some("foot"));
    }

    #[test]
    fn vscode_outside_its_terminal_and_ssh() {
        let extension_host = [
            "VSCODE_PID=4000",
            "VSCODE_IPC_HOOK=/run/user/1000/vscode.sock",
        ];
        assert_eq!(decide(&extension_host, &[]).as_deref(), Some("vscode"));
        let login = [
            "TERM=xterm-256color",
            "SSH_CONNECTION=10.0.0.2 50000 10.0.0.1 22",
            "SSH_TTY=/dev/pts/4",
        ];
        assert_eq!(decide(&login, &["bash", "sshd"]).as_deref(), Some("ssh"));
        // VSCode's remote terminal runs over ssh: the terminal is VSCode's.
        let remote = [
            "TERM_PROGRAM=vscode",
            "SSH_CONNECTION=10.0.0.2 50000 10.0.0.1 22",
        ];
        assert_eq!(decide(&remote, &[]).as_deref(), Some("vscode"));
    }

    #[test]
    fn ancestors_decide_when_the_environment_does_not() {
        let plain = ["TERM=xterm-256color", "HOME=/home/a"];
        assert_eq!(
            decide(&plain, &["bash", "gnome-terminal-", "systemd"]).as_deref(),
            Some("gnome-terminal-server"),
            "Linux cuts names to 15 bytes"
        );
        assert_eq!(
            decide(&plain, &["zsh", "tmux: server"]).as_deref(),
            Some("tmux")
        );
        assert_eq!(
            decide(&plain, &["bash", "code", "code"]).as_deref(),
            Some("vscode")
        );
        assert_eq!(
            decide(&plain, &["zsh", "login", "iTerm2"]).as_deref(),
            Some("iTerm.app")
        );
        assert_eq!(
            decide(&plain, &["bash", "sshd-session"]).as_deref(),
            Some("ssh")
        );
        assert_eq!(
            decide(&plain, &["bash", "tmux: server", "kitty"]).as_deref(),
            Some("tmux"),
            "the nearest host"
        );
        assert_eq!(decide(&plain, &["cron", "systemd"]), None);
        assert_eq!(
            decide(&plain, &["xterm-like-but-no"]),
            None,
            "only a 15-byte name is a cut one"
        );
        // Unreadable (another user's process): ancestors alone.
        let ancestors = ["bash".to_string(), "konsole".to_string()];
        assert_eq!(
            terminal_program(None, ancestors).as_deref(),
            Some("konsole")
        );
        assert_eq!(terminal_program(None, Vec::new()), None);
    }

    #[test]
    fn ancestors_are_read_only_as_far_as_needed() {
        let mut asked = 0;
        let told = terminal_program(
            Some(&env(&VSCODE)),
            std::iter::from_fn(|| {
                asked += 1;
                Some("bash".to_string())
            }),
        );
        assert_eq!(told.as_deref(), Some("vscode"));
        assert_eq!(asked, 0, "the environment decided");
    }

    #[test]
    fn from_a_terminal_by_term_or_a_terminals_own_variable() {
        assert!(env(&["TERM=xterm"]).from_terminal());
        assert!(env(&["TERM="]).from_terminal(), "set, even empty");
        assert!(env(&["TERM_PROGRAM=vscode"]).from_terminal());
        assert!(env(&["TMUX=/tmp/t,1,0"]).from_terminal());
        assert!(env(&["SSH_TTY=/dev/pts/1"]).from_terminal());
        assert!(env(&["KITTY_WINDOW_ID=3"]).from_terminal());
        assert!(!env(&["VSCODE_PID=1", "VSCODE_IPC_HOOK=/x"]).from_terminal());
        assert!(!env(&["SSH_CONNECTION=a 1 b 22"]).from_terminal());
        assert!(!env(&["TERMINFO=/usr/share/terminfo", "XTERM=1", "A=TERM=x"]).from_terminal());
        assert!(!TerminalEnv::parse_block(b"").from_terminal());
        assert!(TerminalEnv::parse_block(b"HOME=/root\0TERM=xterm-256color\0").from_terminal());
    }

    #[test]
    fn only_the_entries_that_matter_are_kept() {
        let kept = TerminalEnv::parse_block(
            b"AWS_SECRET_ACCESS_KEY=s3cr3t\0TERM=xterm\0TERM_PROGRAM=vscode\0novalue\0\xff\xfe=x\0",
        );
        assert_eq!(
            kept,
            TerminalEnv {
                term: Some("xterm".into()),
                term_program: Some("vscode".into()),
                ..TerminalEnv::default()
            }
        );
    }

    #[test]
    fn program_names_drop_what_a_process_wrote_after_a_colon() {
        assert_eq!(program_name("tmux: server"), "tmux");
        assert_eq!(program_name("claude"), "claude");
        assert_eq!(program_name(":odd"), ":odd");
        assert_eq!(program_name("sshd: alice@pts/0"), "sshd");
    }

    #[test]
    fn the_ancestor_walk_stops_at_init_loops_and_depth() {
        // 40 <- 30 <- 20 <- 10 <- 1
        let table = |pid: u32| -> Option<(u32, String)> {
            let ppid = match pid {
                40 => 30,
                30 => 20,
                20 => 10,
                10 => 1,
                _ => return None,
            };
            Some((ppid, format!("p{pid}")))
        };
        let names: Vec<String> = ancestors(40, table).collect();
        assert_eq!(names, ["p30", "p20", "p10"]);
        let looping = |pid: u32| Some((if pid == 5 { 6 } else { 5 }, format!("p{pid}")));
        assert_eq!(ancestors(5, looping).collect::<Vec<_>>(), ["p6"]);
        let deep = |pid: u32| Some((pid + 1, format!("p{pid}")));
        assert_eq!(ancestors(2, deep).count(), MAX_ANCESTORS);
        assert_eq!(ancestors(7, |_| None).count(), 0, "gone");
    }
}

//! Parsing dtrace/FORMAT.md, version 1: one record per line, strings as LENGTH:BYTES so a
//! hostile name cannot end a record or forge one. Malformed input is an error for that
//! record only; the reader skips to the next line and counts it.

/// The first line of every capture.
pub const HEADER: &[u8] = b"hupwatch-dtrace 1";
/// DTrace's strsize is 1 KiB; anything longer is not hupwatch's output.
const MAX_STRING: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Exec {
        time_ns: u64,
        pid: u32,
        ppid: u32,
        sid: u32,
        tty_dev: i64,
        start_ns: u64,
        ignores_hangup: bool,
        comm: String,
    },
    Fork {
        time_ns: u64,
        child: u32,
        parent: u32,
        comm: String,
    },
    Exit {
        time_ns: u64,
        pid: u32,
        ppid: u32,
        status: i32,
        comm: String,
    },
    Signal {
        time_ns: u64,
        target: u32,
        signal: u32,
        sender: u32,
        by_kernel: bool,
        target_comm: String,
        sender_comm: String,
    },
    Discard {
        time_ns: u64,
        target: u32,
        signal: u32,
        target_comm: String,
    },
    Handle {
        time_ns: u64,
        pid: u32,
        signal: u32,
        comm: String,
    },
    Setsid {
        time_ns: u64,
        pid: u32,
        result: i64,
        errno: i32,
        old_sid: u32,
        old_tty_dev: i64,
        comm: String,
    },
    Tty {
        time_ns: u64,
        pid: u32,
        attach: bool,
        sid: u32,
        fd: u32,
        tty_dev: i64,
        comm: String,
    },
    Sigaction {
        time_ns: u64,
        pid: u32,
        signal: u32,
        /// 0 default, 1 ignore, 2 handler.
        action: u8,
        comm: String,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A record and how many bytes it took, its newline included.
    Record(Record, usize),
    /// A bad record and how many bytes to skip: through the next newline.
    Malformed(String, usize),
    /// The input ends inside a record; more may complete it.
    Incomplete,
}

/// Parses the record at the start of `input`.
pub fn parse(input: &[u8]) -> Parsed {
    let mut cursor = Cursor { input, at: 0 };
    match record(&mut cursor) {
        Ok(record) => Parsed::Record(record, cursor.at),
        Err(Problem::Incomplete) => Parsed::Incomplete,
        Err(Problem::Bad(why)) => match input.iter().position(|&b| b == b'\n') {
            Some(newline) => Parsed::Malformed(why, newline + 1),
            None => Parsed::Incomplete,
        },
    }
}

enum Problem {
    Incomplete,
    Bad(String),
}

struct Cursor<'a> {
    input: &'a [u8],
    at: usize,
}

type Result<T> = std::result::Result<T, Problem>;

impl Cursor<'_> {
    /// The bytes up to the next space or newline, which is left in place.
    fn token(&mut self) -> Result<&[u8]> {
        let rest = &self.input[self.at..];
        let end = rest
            .iter()
            .position(|&b| b == b' ' || b == b'\n')
            .ok_or(Problem::Incomplete)?;
        self.at += end;
        Ok(&rest[..end])
    }

    fn space(&mut self) -> Result<()> {
        self.expect(b' ', "a space")
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<()> {
        match self.input.get(self.at) {
            None => Err(Problem::Incomplete),
            Some(&b) if b == byte => {
                self.at += 1;
                Ok(())
            }
            Some(&b) => Err(Problem::Bad(format!(
                "expected {what} at byte {}, found {:?}",
                self.at, b as char
            ))),
        }
    }

    /// ` NUMBER`
    fn int<T: TryFrom<i64>>(&mut self, name: &str) -> Result<T> {
        self.space()?;
        let token = self.token()?;
        let text = std::str::from_utf8(token).unwrap_or("");
        text.parse::<i64>()
            .ok()
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| {
                Problem::Bad(format!(
                    "{name} is {:?}, not a number in range",
                    String::from_utf8_lossy(token)
                ))
            })
    }

    /// ` LENGTH:BYTES`
    fn string(&mut self, name: &str) -> Result<String> {
        self.space()?;
        let rest = &self.input[self.at..];
        let colon = rest.iter().take(6).position(|&b| b == b':');
        let Some(colon) = colon else {
            return if rest.len() < 6 && rest.iter().all(u8::is_ascii_digit) {
                Err(Problem::Incomplete)
            } else {
                Err(Problem::Bad(format!("{name} has no LENGTH: prefix")))
            };
        };
        let len: usize = std::str::from_utf8(&rest[..colon])
            .ok()
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .filter(|&n| n <= MAX_STRING)
            .ok_or_else(|| Problem::Bad(format!("{name} has a bad length")))?;
        let bytes = rest
            .get(colon + 1..colon + 1 + len)
            .ok_or(Problem::Incomplete)?;
        self.at += colon + 1 + len;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn end(&mut self) -> Result<()> {
        self.expect(b'\n', "the end of the record")
    }
}

const KINDS: [&[u8]; 9] = [
    b"exec",
    b"fork",
    b"exit",
    b"signal",
    b"discard",
    b"handle",
    b"setsid",
    b"tty",
    b"sigaction",
];

fn record(c: &mut Cursor) -> Result<Record> {
    let kind = c.token()?.to_vec();
    // Checked before the fields, so a stray line says what it is not.
    if !KINDS.contains(&kind.as_slice()) {
        return Err(unknown_kind(&kind));
    }
    let time_ns = c.int("TIME")?;
    let record = match kind.as_slice() {
        b"exec" => {
            let pid = c.int("PID")?;
            let ppid = c.int("PPID")?;
            let sid = c.int("SID")?;
            let tty_dev = c.int("TTYDEV")?;
            let sec: u64 = c.int("START_SEC")?;
            let usec: u64 = c.int("START_USEC")?;
            let hup: u8 = c.int("HUP")?;
            Record::Exec {
                time_ns,
                pid,
                ppid,
                sid,
                tty_dev,
                start_ns: sec
                    .saturating_mul(1_000_000_000)
                    .saturating_add(usec.min(999_999) * 1000),
                ignores_hangup: hup == 1,
                comm: c.string("COMM")?,
            }
        }
        b"fork" => Record::Fork {
            time_ns,
            child: c.int("CHILD")?,
            parent: c.int("PARENT")?,
            comm: c.string("COMM")?,
        },
        b"exit" => Record::Exit {
            time_ns,
            pid: c.int("PID")?,
            ppid: c.int("PPID")?,
            status: c.int("STATUS")?,
            comm: c.string("COMM")?,
        },
        b"signal" => {
            let target = c.int("TARGET")?;
            let signal = c.int("SIGNAL")?;
            let sender = c.int("SENDER")?;
            let kernel: u8 = c.int("KERNEL")?;
            Record::Signal {
                time_ns,
                target,
                signal,
                sender,
                by_kernel: kernel == 1,
                target_comm: c.string("TARGET_COMM")?,
                sender_comm: c.string("SENDER_COMM")?,
            }
        }
        b"discard" => Record::Discard {
            time_ns,
            target: c.int("TARGET")?,
            signal: c.int("SIGNAL")?,
            target_comm: c.string("TARGET_COMM")?,
        },
        b"handle" => Record::Handle {
            time_ns,
            pid: c.int("PID")?,
            signal: c.int("SIGNAL")?,
            comm: c.string("COMM")?,
        },
        b"setsid" => Record::Setsid {
            time_ns,
            pid: c.int("PID")?,
            result: c.int("RESULT")?,
            errno: c.int("ERRNO")?,
            old_sid: c.int("OLD_SID")?,
            old_tty_dev: c.int("OLD_TTYDEV")?,
            comm: c.string("COMM")?,
        },
        b"tty" => {
            let pid = c.int("PID")?;
            c.space()?;
            let attach = match c.token()? {
                b"attach" => true,
                b"detach" => false,
                other => {
                    return Err(Problem::Bad(format!(
                        "tty operation {:?} is neither attach nor detach",
                        String::from_utf8_lossy(other)
                    )));
                }
            };
            Record::Tty {
                time_ns,
                pid,
                attach,
                sid: c.int("SID")?,
                fd: c.int("FD")?,
                tty_dev: c.int("TTYDEV")?,
                comm: c.string("COMM")?,
            }
        }
        b"sigaction" => {
            let pid = c.int("PID")?;
            let signal = c.int("SIGNAL")?;
            let action: u8 = c.int("ACTION")?;
            if action > 2 {
                return Err(Problem::Bad(format!("ACTION {action} is not 0, 1 or 2")));
            }
            Record::Sigaction {
                time_ns,
                pid,
                signal,
                action,
                comm: c.string("COMM")?,
            }
        }
        _ => return Err(unknown_kind(&kind)),
    };
    c.end()?;
    Ok(record)
}

fn unknown_kind(kind: &[u8]) -> Problem {
    Problem::Bad(format!(
        "unknown record kind {:?}",
        String::from_utf8_lossy(&kind[..kind.len().min(40)])
    ))
}

/// DTrace prints a device as a signed number, -1 for none.
pub fn tty_name(dev: i64) -> Option<String> {
    crate::host::darwin_data::dev_name(dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &[u8]) -> Record {
        match parse(text) {
            Parsed::Record(record, used) => {
                assert_eq!(
                    used,
                    text.len(),
                    "all of {:?}",
                    String::from_utf8_lossy(text)
                );
                record
            }
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(text)),
        }
    }

    #[test]
    fn every_record_kind_parses() {
        let exec = one(b"exec 1000 42 41 41 268435459 1732189999 950000 1 5:sleep\n");
        assert_eq!(
            exec,
            Record::Exec {
                time_ns: 1000,
                pid: 42,
                ppid: 41,
                sid: 41,
                tty_dev: 268435459,
                start_ns: 1_732_189_999_950_000_000,
                ignores_hangup: true,
                comm: "sleep".into()
            }
        );
        assert!(matches!(
            one(b"fork 1 43 42 4:bash\n"),
            Record::Fork {
                child: 43,
                parent: 42,
                ..
            }
        ));
        assert!(matches!(
            one(b"exit 1 42 1 256 5:sleep\n"),
            Record::Exit { status: 256, .. }
        ));
        assert!(matches!(
            one(b"signal 1 42 1 0 1 5:sleep 0:\n"),
            Record::Signal { by_kernel: true, sender: 0, ref sender_comm, .. } if sender_comm.is_empty()
        ));
        assert!(matches!(
            one(b"discard 1 42 1 5:sleep\n"),
            Record::Discard { signal: 1, .. }
        ));
        assert!(matches!(
            one(b"handle 1 42 1 2:sh\n"),
            Record::Handle { signal: 1, .. }
        ));
        assert!(matches!(
            one(b"setsid 1 42 -1 1 41 -1 5:agent\n"),
            Record::Setsid {
                result: -1,
                errno: 1,
                old_tty_dev: -1,
                ..
            }
        ));
        assert!(matches!(
            one(b"tty 1 42 attach 42 0 268435459 4:bash\n"),
            Record::Tty {
                attach: true,
                fd: 0,
                ..
            }
        ));
        assert!(matches!(
            one(b"sigaction 1 42 1 1 5:nohup\n"),
            Record::Sigaction { action: 1, .. }
        ));
    }

    #[test]
    fn hostile_names_are_taken_by_length_not_by_delimiter() {
        let name = "a b\tc\"d'\ne\\f";
        let text = format!("exec 1 42 41 41 -1 0 0 0 {}:{name}\n", name.len());
        let Record::Exec { comm, .. } = one(text.as_bytes()) else {
            panic!()
        };
        assert_eq!(comm, name);
        // A forged record inside a name is just part of the name.
        let forged = "x\nexit 1 1 0 0 4:init";
        let text = format!("fork 1 43 42 {}:{forged}\n", forged.len());
        assert!(matches!(one(text.as_bytes()), Record::Fork { ref comm, .. } if comm == forged));
        // Invalid UTF-8 is replaced, not a failure.
        let Record::Handle { comm, .. } = one(b"handle 1 42 1 2:\xff\xfe\n") else {
            panic!()
        };
        assert_eq!(comm, "\u{fffd}\u{fffd}");
    }

    #[test]
    fn malformed_lines_say_why_and_skip_to_the_next_line() {
        for bad in [
            &b"bogus 1 2\nexit"[..],
            b"exec x 42 41 41 -1 0 0 0 5:sleep\n",
            b"exit 1 42 1 0 9:short\n",
            b"exit 1 42 1 0 sleep\n",
            b"sigaction 1 42 1 7 2:sh\n",
            b"tty 1 42 sideways 42 0 -1 2:sh\n",
            b"fork 1 -5 42 2:sh\n",
            b"exit 1 42 1 0 5:sleep trailing\n",
        ] {
            match parse(bad) {
                Parsed::Malformed(why, skip) => {
                    assert!(!why.is_empty());
                    assert_eq!(bad[skip - 1], b'\n', "{why}");
                }
                Parsed::Incomplete if bad == b"exit 1 42 1 0 9:short\n" => {}
                other => panic!("{other:?} for {:?}", String::from_utf8_lossy(bad)),
            }
        }
    }

    #[test]
    fn a_record_cut_short_asks_for_more() {
        let full = b"signal 1 42 1 0 1 5:sleep 4:kill\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Parsed::Incomplete, "cut at {cut}");
        }
    }

    /// A small in-test fuzzer: corrupted, cut and spliced records must never panic and
    /// must always make progress (cargo-fuzz runs the same harness for longer).
    #[test]
    fn mangled_input_never_panics_or_stalls() {
        let good: &[&[u8]] = &[
            b"exec 1000 42 41 41 268435459 1732189999 950000 1 5:sleep\n",
            b"signal 1 42 1 0 1 5:sleep 4:kill\n",
            b"setsid 1 42 -1 1 41 -1 5:agent\n",
            b"tty 1 42 attach 42 0 268435459 4:bash\n",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut input: Vec<u8> = Vec::new();
            for _ in 0..(random() % 4 + 1) {
                input.extend_from_slice(good[(random() % good.len() as u64) as usize]);
            }
            for _ in 0..(random() % 6) {
                let at = (random() % input.len() as u64) as usize;
                match random() % 3 {
                    0 => input[at] = random() as u8,
                    1 => input.truncate(at),
                    _ => {
                        let bytes = b"0123456789: \n-";
                        input.insert(at, bytes[(random() % bytes.len() as u64) as usize]);
                    }
                }
                if input.is_empty() {
                    break;
                }
            }
            drain(&input);
        }
    }

    /// Parses `input` to the end as a reader does; every step must consume something.
    pub(crate) fn drain(mut input: &[u8]) {
        loop {
            match parse(input) {
                Parsed::Record(_, used) | Parsed::Malformed(_, used) => {
                    assert!(used > 0 && used <= input.len());
                    input = &input[used..];
                }
                Parsed::Incomplete => return,
            }
        }
    }

    #[test]
    fn terminals_are_named_as_macos_names_them() {
        assert_eq!(tty_name(-1), None);
        assert_eq!(tty_name((16 << 24) | 3).as_deref(), Some("ttys003"));
        assert_eq!(tty_name((4 << 24) | 1).as_deref(), Some("dev:4,1"));
    }
}

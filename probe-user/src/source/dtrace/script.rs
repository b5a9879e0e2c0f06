//! dtrace/hupwatch.d with its placeholders filled in for one run.
use std::fmt::Write;

const TEMPLATE: &str = include_str!("../../../../dtrace/hupwatch.d");

/// What the script is told: watch everything, or these names and these pids (with their
/// descendants, found by the caller) from the start.
pub struct ScriptOptions<'a> {
    pub self_pid: u32,
    pub names: &'a [String],
    pub seeds: &'a [u32],
}

pub fn render(options: &ScriptOptions) -> String {
    let trace_all = options.names.is_empty() && options.seeds.is_empty();
    let matching = if options.names.is_empty() {
        "0".to_string()
    } else {
        options
            .names
            .iter()
            .map(|name| format!("execname == \"{}\"", d_string(name)))
            .collect::<Vec<_>>()
            .join(" || ")
    };
    let mut seeds = String::new();
    for pid in options.seeds {
        let _ = write!(seeds, "tracked[{pid}] = 1; ");
    }
    TEMPLATE
        .replace("@TRACE_ALL@", if trace_all { "1" } else { "0" })
        .replace("@SELF@", &options.self_pid.to_string())
        .replace("@MATCH@", &matching)
        .replace("@SEEDS@", &seeds)
}

/// The body of a D string literal: quotes, backslashes and every byte outside printable
/// ASCII as octal escapes, so a name cannot end the literal or the script.
fn d_string(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(byte as char);
            }
            0x20..=0x7e => out.push(byte as char),
            _ => {
                let _ = write!(out, "\\{byte:03o}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        let names = ["claude".to_string(), "we\"ird\\\n".to_string()];
        let script = render(&ScriptOptions {
            self_pid: 777,
            names: &names,
            seeds: &[10, 11],
        });
        assert!(!script.contains('@'), "{script}");
        assert!(script.contains("inline int TRACE_ALL = 0;"));
        assert!(script.contains("inline int SELF = 777;"));
        assert!(script.contains(r#"(execname == "claude" || execname == "we\"ird\\\012")"#));
        assert!(script.contains("tracked[10] = 1; tracked[11] = 1;"));
    }

    #[test]
    fn no_names_and_no_pids_traces_everything() {
        let script = render(&ScriptOptions {
            self_pid: 1,
            names: &[],
            seeds: &[],
        });
        assert!(script.contains("inline int TRACE_ALL = 1;"));
        assert!(script.contains("&& (0)/"));
    }
}

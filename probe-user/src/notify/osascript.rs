//! macOS: `osascript -e 'display notification "BODY" with title "SUMMARY"'`.
use std::process::Stdio;

use tokio::process::Command;

use super::message::Notification;

pub async fn deliver(n: &Notification) -> Result<(), String> {
    let out = Command::new("/usr/bin/osascript")
        .arg("-e")
        .arg(script(n))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run osascript: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let said = said.trim();
    Err(if said.is_empty() {
        format!("osascript {}", out.status)
    } else {
        format!("osascript: {said}")
    })
}

/// The AppleScript: both texts as string literals.
pub fn script(n: &Notification) -> String {
    format!(
        "display notification {} with title {}",
        quoted(&n.body),
        quoted(&n.summary)
    )
}

/// An AppleScript string literal: backslashes and double quotes escaped; line breaks
/// kept as `\n` escapes, which AppleScript reads back as line breaks.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::super::message::Urgency;
    use super::*;

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        let n = Notification {
            summary: r#"say "hi""#.into(),
            body: "C:\\path\nnext".into(),
            urgency: Urgency::Normal,
        };
        assert_eq!(
            script(&n),
            r#"display notification "C:\\path\nnext" with title "say \"hi\"""#
        );
    }
}

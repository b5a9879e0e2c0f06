//! What a guest kernel's panic said, read from its console: one short phrase for the
//! matrix's line, the whole oops stays in the console log.

/// "int3 at unmap_page_range+0x741/0xaf0: Fatal exception in interrupt" for a console
/// that shows a panic; None for one that does not.
pub fn summary(console: &str) -> Option<String> {
    let reason = after(console, "Kernel panic - not syncing:")?;
    // The oops's first line ("int3: 0000 [#1] SMP NOPTI", "general protection fault, ...:
    // 0000 [#1] ...", "BUG: kernel NULL pointer dereference, ..."): what trapped.
    let what = console
        .lines()
        .map(without_timestamp)
        .find(|line| line.contains("[#1]") || line.starts_with("BUG:"))
        .map(|line| {
            line.split([':', ','])
                .next()
                .unwrap_or(line)
                .trim()
                .to_owned()
        });
    let place = after(console, "RIP: 0010:");
    let mut text = what.unwrap_or_else(|| "panic".to_owned());
    if let Some(place) = place {
        text.push_str(" at ");
        text.push_str(&place);
    }
    text.push_str(": ");
    text.push_str(&reason);
    Some(text)
}

/// What follows `marker` on the first line that has it, trimmed.
fn after(console: &str, marker: &str) -> Option<String> {
    console
        .lines()
        .find_map(|line| line.split_once(marker))
        .map(|(_, rest)| rest.trim().to_owned())
}

/// A console line without the kernel's "[  288.685781] " timestamp.
fn without_timestamp(line: &str) -> &str {
    match line.trim_start().strip_prefix('[') {
        Some(rest) => rest.split_once("] ").map_or(line, |(_, text)| text),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines that matter of the 5.15 guest's console when it died (CI, 2026-12-02).
    const INT3: &str = "kernel-matrix: ebpf_faults: running
[  288.682702] int3: 0000 [#1] SMP NOPTI
[  288.685781] CPU: 1 PID: 584 Comm: hupwatch Not tainted 5.15.215 #1
[  288.685781] RIP: 0010:unmap_page_range+0x741/0xaf0
[  288.685781]  </TASK>
[  288.685781] RIP: 0010:unmap_page_range+0x741/0xaf0
[  288.685781] Kernel panic - not syncing: Fatal exception in interrupt
";

    #[test]
    fn a_panic_is_summed_up_by_what_trapped_where_and_why() {
        assert_eq!(
            summary(INT3).as_deref(),
            Some("int3 at unmap_page_range+0x741/0xaf0: Fatal exception in interrupt")
        );
    }

    #[test]
    fn a_console_without_a_panic_has_none() {
        assert_eq!(
            summary("kernel-matrix: lib: exit status 0 after 6 s\n"),
            None
        );
    }

    #[test]
    fn a_panic_without_an_oops_still_says_why() {
        let console = "[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n";
        assert_eq!(
            summary(console).as_deref(),
            Some("panic: VFS: Unable to mount root fs")
        );
    }
}

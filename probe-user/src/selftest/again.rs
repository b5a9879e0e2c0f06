//! Running hupwatch again in one of the self-test's roles (`__selftest-child ROLE`): the
//! test processes need nothing but this binary and the system's nohup.
use std::{path::Path, process::Command};

/// The hidden command's name (cli/args.rs).
pub const COMMAND: &str = "__selftest-child";

/// hupwatch again, in role `role`, told the self-test's folder when it needs it.
pub fn again(role: &str, folder: Option<&Path>) -> anyhow::Result<Command> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args([COMMAND, role]);
    command.args(folder);
    Ok(command)
}

//! tracefs: finding (or mounting) it and reading tracepoint `format` files, whose field
//! offsets the programs are configured with at load time.
use std::{
    collections::HashMap,
    ffi::CString,
    fs, io,
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted and mounting it at /sys/kernel/tracing failed ({0}); mount it with `mount -t tracefs nodev /sys/kernel/tracing`"
    )]
    Mount(io::Error),
    #[error("tracepoint {0} does not exist on this kernel")]
    Missing(String),
    #[error("tracepoint {tracepoint} has no field {field}")]
    NoField { tracepoint: String, field: String },
}

/// Where tracepoint formats are read from. `HUPWATCH_TRACEFS` overrides it (tests use it to
/// present a kernel without some tracepoints).
pub fn root() -> Result<PathBuf, TracefsError> {
    if let Some(dir) = std::env::var_os("HUPWATCH_TRACEFS") {
        return Ok(PathBuf::from(dir));
    }
    for dir in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(dir).join("events").is_dir() {
            return Ok(PathBuf::from(dir));
        }
    }
    mount("/sys/kernel/tracing").map_err(TracefsError::Mount)?;
    Ok(PathBuf::from("/sys/kernel/tracing"))
}

fn mount(target: &str) -> io::Result<()> {
    let source = CString::new("nodev").expect("no NUL");
    let fstype = CString::new("tracefs").expect("no NUL");
    let target = CString::new(target).expect("no NUL");
    // SAFETY: all pointers are valid NUL-terminated strings; data may be NULL.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Format {
    pub tracepoint: String,
    fields: HashMap<String, Field>,
}

impl Format {
    pub fn read(root: &Path, category: &str, name: &str) -> Result<Self, TracefsError> {
        let tracepoint = format!("{category}/{name}");
        let path = root.join("events").join(category).join(name).join("format");
        let text =
            fs::read_to_string(path).map_err(|_| TracefsError::Missing(tracepoint.clone()))?;
        Ok(Self::parse(&tracepoint, &text))
    }

    /// Parses lines like `field:char comm[16]; offset:20; size:16; signed:0;` (tab-separated).
    pub fn parse(tracepoint: &str, text: &str) -> Self {
        let mut fields = HashMap::new();
        for line in text.lines() {
            let mut name = None;
            let mut offset = None;
            let mut size = None;
            for part in line.split(';').map(str::trim) {
                if let Some(decl) = part.strip_prefix("field:") {
                    name = decl
                        .split_whitespace()
                        .last()
                        .map(|n| n.split('[').next().unwrap_or(n).to_string());
                } else if let Some(v) = part.strip_prefix("offset:") {
                    offset = v.parse().ok();
                } else if let Some(v) = part.strip_prefix("size:") {
                    size = v.parse().ok();
                }
            }
            if let (Some(name), Some(offset), Some(size)) = (name, offset, size) {
                fields.insert(name, Field { offset, size });
            }
        }
        Self {
            tracepoint: tracepoint.to_string(),
            fields,
        }
    }

    pub fn field(&self, name: &str) -> Result<Field, TracefsError> {
        self.fields
            .get(name)
            .copied()
            .ok_or_else(|| TracefsError::NoField {
                tracepoint: self.tracepoint.clone(),
                field: name.to_string(),
            })
    }

    pub fn offset(&self, name: &str) -> Result<u32, TracefsError> {
        Ok(self.field(name)?.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNAL_GENERATE: &str = "name: signal_generate
ID: 180
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int sig;\toffset:8;\tsize:4;\tsigned:1;
\tfield:char comm[16];\toffset:20;\tsize:16;\tsigned:0;
\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:int result;\toffset:44;\tsize:4;\tsigned:1;

print fmt: \"sig=%d\", REC->sig
";

    #[test]
    fn parses_fields_arrays_and_data_loc() {
        let format = Format::parse("signal/signal_generate", SIGNAL_GENERATE);
        assert_eq!(format.field("sig").unwrap(), Field { offset: 8, size: 4 });
        assert_eq!(
            format.field("comm").unwrap(),
            Field {
                offset: 20,
                size: 16
            }
        );
        assert_eq!(format.offset("result").unwrap(), 44);
        assert_eq!(format.offset("filename").unwrap(), 8);
        assert_eq!(format.offset("common_pid").unwrap(), 4);
        let err = format.offset("nope").unwrap_err();
        assert_eq!(
            err.to_string(),
            "tracepoint signal/signal_generate has no field nope"
        );
    }

    #[test]
    fn a_missing_tracepoint_is_named() {
        let err =
            Format::read(Path::new("/nonexistent"), "sched", "sched_process_exit").unwrap_err();
        assert_eq!(
            err.to_string(),
            "tracepoint sched/sched_process_exit does not exist on this kernel"
        );
    }
}

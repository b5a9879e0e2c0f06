//! A small reader of kernel BTF (`/sys/kernel/btf/vmlinux`), enough to find struct member
//! offsets and enum values. Rust eBPF programs get no CO-RE field relocations, so the
//! offsets of task_struct and friends are resolved here and handed to the programs.
//! (aya-obj parses BTF too, but keeps member lookups crate-private.)
use std::{collections::HashMap, path::Path};

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    // `cause`, not `source`: said once, in the message, not again by the error's chain.
    #[error(
        "cannot read kernel BTF at {path}: {cause}; hupwatch needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"
    )]
    Read { path: String, cause: std::io::Error },
    #[error("kernel BTF is malformed: {0}")]
    Malformed(&'static str),
}

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Clone, Debug)]
struct Member {
    name: String,
    type_id: u32,
    bit_offset: u32,
}

#[derive(Clone, Debug)]
struct Type {
    kind: u32,
    name: String,
    /// The referenced type for modifiers, typedefs and pointers; the size for structs;
    /// the element type for arrays.
    type_ref: u32,
    members: Vec<Member>,
    enumerators: Vec<(String, i64)>,
    /// How many members, enumerators or parameters follow it.
    vlen: usize,
}

/// What a struct member is, by the name of what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// An array of the named type.
    ArrayOf(String),
    /// The named struct, held by value.
    Struct(String),
    Other,
}

pub struct Btf {
    /// Index 0 is `void`; type ids are indices.
    types: Vec<Type>,
    by_name: HashMap<(u32, String), u32>,
}

impl Btf {
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|cause| BtfError::Read {
            path: path.display().to_string(),
            cause,
        })?;
        Self::parse(&data)
    }

    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let u16_at = |at: usize| {
            data.get(at..at + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
        };
        let u32_at = |at: usize| {
            data.get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        if u16_at(0) != Some(0xeb9f) {
            return Err(BtfError::Malformed(
                "bad magic (big-endian BTF is not supported)",
            ));
        }
        let header = |i: usize| u32_at(4 + 4 * i).ok_or(BtfError::Malformed("short header"));
        let hdr_len = header(0)? as usize;
        let (type_off, type_len) = (header(1)? as usize, header(2)? as usize);
        let (str_off, str_len) = (header(3)? as usize, header(4)? as usize);
        let types_start = hdr_len + type_off;
        let types_end = types_start + type_len;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Malformed("string section out of bounds"))?;
        let string = |off: u32| -> String {
            let rest = strings.get(off as usize..).unwrap_or_default();
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end]).into_owned()
        };

        let void = Type {
            kind: 0,
            name: String::new(),
            type_ref: 0,
            members: vec![],
            enumerators: vec![],
            vlen: 0,
        };
        let mut types = vec![void];
        let mut at = types_start;
        while at < types_end {
            let word =
                |i: usize| u32_at(at + 4 * i).ok_or(BtfError::Malformed("type out of bounds"));
            let (name_off, info, size_or_type) = (word(0)?, word(1)?, word(2)?);
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            at += 12;
            let mut ty = Type {
                kind,
                name: string(name_off),
                type_ref: size_or_type,
                members: Vec::new(),
                enumerators: Vec::new(),
                vlen,
            };
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => {
                    // struct btf_array { type, index_type, nelems }: keep the element type.
                    ty.type_ref = u32_at(at).ok_or(BtfError::Malformed("array out of bounds"))?;
                    12
                }
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = at + 12 * i;
                        let field = |j: usize| {
                            u32_at(m + 4 * j).ok_or(BtfError::Malformed("member out of bounds"))
                        };
                        let raw_offset = field(2)?;
                        ty.members.push(Member {
                            name: string(field(0)?),
                            type_id: field(1)?,
                            // With kind_flag, the top 8 bits hold a bitfield's size.
                            bit_offset: if kind_flag {
                                raw_offset & 0x00ff_ffff
                            } else {
                                raw_offset
                            },
                        });
                    }
                    12 * vlen
                }
                KIND_ENUM => {
                    for i in 0..vlen {
                        let e = at + 8 * i;
                        let name = u32_at(e).ok_or(BtfError::Malformed("enum out of bounds"))?;
                        let value =
                            u32_at(e + 4).ok_or(BtfError::Malformed("enum out of bounds"))?;
                        ty.enumerators.push((string(name), value as i32 as i64));
                    }
                    8 * vlen
                }
                KIND_ENUM64 => {
                    for i in 0..vlen {
                        let e = at + 12 * i;
                        let name = u32_at(e).ok_or(BtfError::Malformed("enum out of bounds"))?;
                        let lo = u32_at(e + 4).ok_or(BtfError::Malformed("enum out of bounds"))?;
                        let hi = u32_at(e + 8).ok_or(BtfError::Malformed("enum out of bounds"))?;
                        ty.enumerators
                            .push((string(name), ((hi as u64) << 32 | lo as u64) as i64));
                    }
                    12 * vlen
                }
                KIND_FUNC_PROTO => 8 * vlen,
                KIND_DATASEC => 12 * vlen,
                0 | 20.. => return Err(BtfError::Malformed("unknown type kind")),
                _ => 0,
            };
            at += extra;
            types.push(ty);
        }

        let mut by_name = HashMap::new();
        for (id, ty) in types.iter().enumerate() {
            if !ty.name.is_empty() {
                by_name
                    .entry((ty.kind, ty.name.clone()))
                    .or_insert(id as u32);
            }
        }
        Ok(Self { types, by_name })
    }

    /// Byte offset of `member` in `struct name`, looking inside anonymous struct and union
    /// members as C does.
    pub fn member_offset(&self, struct_name: &str, member: &str) -> Option<u32> {
        self.member(struct_name, member).map(|(bits, _)| bits / 8)
    }

    /// `member`'s offset in bits and its type id.
    fn member(&self, struct_name: &str, member: &str) -> Option<(u32, u32)> {
        let id = *self.by_name.get(&(KIND_STRUCT, struct_name.to_string()))?;
        self.find_member(id, member, 0)
    }

    fn find_member(&self, type_id: u32, member: &str, base_bits: u32) -> Option<(u32, u32)> {
        let ty = self.types.get(type_id as usize)?;
        for m in &ty.members {
            if m.name == member {
                return Some((base_bits + m.bit_offset, m.type_id));
            }
        }
        for m in ty.members.iter().filter(|m| m.name.is_empty()) {
            let inner = self.strip_modifiers(m.type_id);
            let kind = self.types.get(inner as usize)?.kind;
            if (kind == KIND_STRUCT || kind == KIND_UNION)
                && let Some(found) = self.find_member(inner, member, base_bits + m.bit_offset)
            {
                return Some(found);
            }
        }
        None
    }

    fn strip_modifiers(&self, mut type_id: u32) -> u32 {
        for _ in 0..16 {
            match self.types.get(type_id as usize) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    type_id = t.type_ref
                }
                _ => break,
            }
        }
        type_id
    }

    /// The shape of `struct_name.member`'s type, modifiers and typedefs looked through:
    /// how a kernel lays out a member that changed type between versions.
    pub fn member_shape(&self, struct_name: &str, member: &str) -> Option<Shape> {
        let (_, type_id) = self.member(struct_name, member)?;
        let ty = self.types.get(self.strip_modifiers(type_id) as usize)?;
        match ty.kind {
            KIND_ARRAY => {
                let element = self.types.get(self.strip_modifiers(ty.type_ref) as usize)?;
                Some(Shape::ArrayOf(element.name.clone()))
            }
            KIND_STRUCT => Some(Shape::Struct(ty.name.clone())),
            _ => Some(Shape::Other),
        }
    }

    /// How many arguments a tracepoint hands a BTF-typed program, from the kernel's
    /// `typedef void (*btf_trace_NAME)(void *, ARGS...)`.
    pub fn tracepoint_args(&self, tracepoint: &str) -> Option<usize> {
        let id = *self
            .by_name
            .get(&(KIND_TYPEDEF, format!("btf_trace_{tracepoint}")))?;
        let pointer = self.types.get(self.strip_modifiers(id) as usize)?;
        if pointer.kind != KIND_PTR {
            return None;
        }
        let proto = self.types.get(pointer.type_ref as usize)?;
        (proto.kind == KIND_FUNC_PROTO).then(|| proto.vlen.saturating_sub(1))
    }

    /// `sizeof(struct name)`.
    pub fn struct_size(&self, struct_name: &str) -> Option<u32> {
        let id = *self.by_name.get(&(KIND_STRUCT, struct_name.to_string()))?;
        // For structs and unions the word that otherwise names a type holds the size.
        self.types.get(id as usize).map(|t| t.type_ref)
    }

    /// The value of an enumerator, searching every enum (kernel enumerators are unique).
    pub fn enum_value(&self, enumerator: &str) -> Option<i64> {
        self.types
            .iter()
            .filter(|t| t.kind == KIND_ENUM || t.kind == KIND_ENUM64)
            .flat_map(|t| t.enumerators.iter())
            .find(|(name, _)| name == enumerator)
            .map(|&(_, value)| value)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a little-endian BTF blob from (name, info, size_or_type, trailing words).
    fn blob(
        strings: &[&str],
        types: &[(u32, u32, u32, Vec<u32>)],
    ) -> (Vec<u8>, HashMap<String, u32>) {
        let mut strtab = vec![0u8];
        let mut offsets = HashMap::new();
        for s in strings {
            offsets.insert(s.to_string(), strtab.len() as u32);
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
        }
        let mut type_bytes = Vec::new();
        for (name, info, size, extra) in types {
            for w in [*name, *info, *size].iter().chain(extra.iter()) {
                type_bytes.extend_from_slice(&w.to_le_bytes());
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&0xeb9fu16.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            type_bytes.len() as u32,
            type_bytes.len() as u32,
            strtab.len() as u32,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&type_bytes);
        out.extend_from_slice(&strtab);
        (out, offsets)
    }

    #[test]
    fn finds_members_inside_anonymous_unions_and_bitfields() {
        let names = [
            "int",
            "outer",
            "a",
            "b",
            "c",
            "flags",
            "pid_type",
            "PIDTYPE_SID",
        ];
        let (probe, s) = blob(&names, &[]);
        drop(probe);
        let info = |kind: u32, vlen: u32, kflag: bool| {
            (kind << 24) | vlen | if kflag { 1 << 31 } else { 0 }
        };
        let types = vec![
            // 1: int
            (s["int"], info(KIND_INT, 0, false), 4, vec![32]),
            // 2: anonymous union { int b; int c; }
            (
                0,
                info(KIND_UNION, 2, false),
                4,
                vec![s["b"], 1, 0, s["c"], 1, 0],
            ),
            // 3: struct outer { int a; union {b, c} (at byte 8); int flags:3 (bitfield at bit 96) }
            (
                s["outer"],
                info(KIND_STRUCT, 3, true),
                16,
                vec![s["a"], 1, 0, 0, 2, 64, s["flags"], 1, (3 << 24) | 96],
            ),
            // 4: enum pid_type { PIDTYPE_SID = 3 }
            (
                s["pid_type"],
                info(KIND_ENUM, 1, false),
                4,
                vec![s["PIDTYPE_SID"], 3],
            ),
        ];
        let (data, _) = blob(&names, &types);
        let btf = Btf::parse(&data).unwrap();
        assert_eq!(btf.member_offset("outer", "a"), Some(0));
        assert_eq!(btf.member_offset("outer", "c"), Some(8));
        assert_eq!(btf.member_offset("outer", "flags"), Some(12));
        assert_eq!(btf.member_offset("outer", "missing"), None);
        assert_eq!(btf.member_offset("nostruct", "a"), None);
        assert_eq!(btf.struct_size("outer"), Some(16));
        assert_eq!(btf.struct_size("nostruct"), None);
        assert_eq!(btf.enum_value("PIDTYPE_SID"), Some(3));
    }

    #[test]
    fn tells_an_array_member_from_a_struct_one_and_counts_tracepoint_arguments() {
        let names = [
            "long",
            "percpu_counter",
            "count",
            "mm_struct",
            "rss_stat",
            "mm_rss_stat",
            "old_mm",
            "btf_trace_rss_stat",
        ];
        let (_, s) = blob(&names, &[]);
        let info = |kind: u32, vlen: u32| (kind << 24) | vlen;
        let types = vec![
            // 1: long
            (s["long"], info(KIND_INT, 0), 8, vec![64]),
            // 2: struct percpu_counter { long count; } (40 bytes)
            (
                s["percpu_counter"],
                info(KIND_STRUCT, 1),
                40,
                vec![s["count"], 1, 64],
            ),
            // 3: struct percpu_counter[4]
            (0, info(KIND_ARRAY, 0), 0, vec![2, 1, 4]),
            // 4: struct mm_struct { <anonymous struct 5> } (as the kernel wraps it)
            (s["mm_struct"], info(KIND_STRUCT, 1), 256, vec![0, 5, 0]),
            // 5: anonymous struct { percpu_counter rss_stat[4] at byte 16 }
            (0, info(KIND_STRUCT, 1), 256, vec![s["rss_stat"], 3, 128]),
            // 6: struct mm_rss_stat { long count[4]; }, 7: long[4]
            (
                s["mm_rss_stat"],
                info(KIND_STRUCT, 1),
                32,
                vec![s["count"], 7, 0],
            ),
            (0, info(KIND_ARRAY, 0), 0, vec![1, 1, 4]),
            // 8: struct old_mm { struct mm_rss_stat rss_stat; }
            (
                s["old_mm"],
                info(KIND_STRUCT, 1),
                32,
                vec![s["rss_stat"], 6, 0],
            ),
            // 9: void (*)(void *, struct mm_struct *, int): pointer 10 to prototype 11
            (s["btf_trace_rss_stat"], info(KIND_TYPEDEF, 0), 10, vec![]),
            (0, info(KIND_PTR, 0), 11, vec![]),
            (0, info(KIND_FUNC_PROTO, 3), 0, vec![0, 0, 0, 4, 0, 1]),
        ];
        let (data, _) = blob(&names, &types);
        let btf = Btf::parse(&data).unwrap();
        assert_eq!(
            btf.member_shape("mm_struct", "rss_stat"),
            Some(Shape::ArrayOf("percpu_counter".into()))
        );
        assert_eq!(btf.member_offset("mm_struct", "rss_stat"), Some(16));
        assert_eq!(
            btf.member_shape("old_mm", "rss_stat"),
            Some(Shape::Struct("mm_rss_stat".into()))
        );
        assert_eq!(btf.member_shape("old_mm", "nothing"), None);
        assert_eq!(btf.tracepoint_args("rss_stat"), Some(2));
        assert_eq!(btf.tracepoint_args("signal_generate"), None);
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"not btf at all").is_err());
        assert!(Btf::parse(&[0x9f, 0xeb, 1, 0]).is_err());
    }

    /// This kernel's BTF; `None` only outside CI, on a kernel built without it (the root
    /// tests need it, so CI kernels must have it).
    pub(crate) fn this_kernels_btf() -> Option<Btf> {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            assert!(std::env::var_os("CI").is_none(), "CI kernels must have BTF");
            return None;
        }
        Some(Btf::from_file(path).unwrap())
    }

    #[test]
    fn reads_this_kernels_task_struct() {
        let Some(btf) = this_kernels_btf() else {
            return;
        };
        let pid = btf.member_offset("task_struct", "pid").unwrap();
        let tgid = btf.member_offset("task_struct", "tgid").unwrap();
        assert_eq!(tgid, pid + 4, "pid and tgid are adjacent pid_t members");
        assert!(btf.member_offset("task_struct", "real_parent").is_some());
        assert!(btf.member_offset("signal_struct", "tty").is_some());
        assert!(btf.member_offset("task_struct", "start_boottime").is_some());
        assert_eq!(btf.enum_value("PIDTYPE_SID"), Some(3));
        // rss_stat's program reads a count one of two ways, whichever this kernel has.
        match crate::ebpf::resolve::rss_count(&btf).unwrap() {
            crate::ebpf::resolve::RssCount::Argument => {
                assert_eq!(btf.tracepoint_args("rss_stat"), Some(3));
            }
            crate::ebpf::resolve::RssCount::PerCpuCounters { first, stride } => {
                let counters = btf.member_offset("percpu_counter", "counters").unwrap();
                assert!(first > 0 && counters + 8 <= stride, "{first} {stride}");
                assert_eq!(btf.tracepoint_args("rss_stat"), Some(2));
            }
        }
    }
}

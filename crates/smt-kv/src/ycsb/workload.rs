//! YCSB's core workloads A, B, C, D and F (E, scans, is not run), and the record
//! layouts of the paper's experiment.

use bytes::Bytes;

use super::generator::fnv1a_64;

/// A core workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Update heavy: 50 % reads, 50 % updates, zipfian.
    A,
    /// Read mostly: 95 % reads, 5 % updates, zipfian.
    B,
    /// Read only, zipfian.
    C,
    /// Read latest: 95 % reads, 5 % inserts, reads favour the newest records.
    D,
    /// Read-modify-write: 50 % reads, 50 % read-modify-writes, zipfian.
    F,
}

/// What one operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Read,
    Update,
    Insert,
    ReadModifyWrite,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Read, Op::Update, Op::Insert, Op::ReadModifyWrite];
    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Update => "update",
            Op::Insert => "insert",
            Op::ReadModifyWrite => "read_modify_write",
        }
    }
}

impl Workload {
    pub fn parse(s: &str) -> Option<Workload> {
        Some(match s.to_ascii_lowercase().as_str() {
            "a" => Workload::A,
            "b" => Workload::B,
            "c" => Workload::C,
            "d" => Workload::D,
            "f" => Workload::F,
            _ => return None,
        })
    }

    pub fn letter(self) -> char {
        match self {
            Workload::A => 'a',
            Workload::B => 'b',
            Workload::C => 'c',
            Workload::D => 'd',
            Workload::F => 'f',
        }
    }

    /// The operation for a uniform draw `u` in [0, 1).
    pub fn op(self, u: f64) -> Op {
        match self {
            Workload::A if u < 0.5 => Op::Read,
            Workload::A => Op::Update,
            Workload::B if u < 0.95 => Op::Read,
            Workload::B => Op::Update,
            Workload::C => Op::Read,
            Workload::D if u < 0.95 => Op::Read,
            Workload::D => Op::Insert,
            Workload::F if u < 0.5 => Op::Read,
            Workload::F => Op::ReadModifyWrite,
        }
    }

    /// Whether keys are chosen by recency (`latest`) instead of scrambled zipfian.
    pub fn latest(self) -> bool {
        self == Workload::D
    }
}

/// Fields per record and bytes per field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub fields: usize,
    pub field_len: usize,
    /// The size the layout stands for (1024 for 10 x 100 B, as YCSB's papers say).
    pub nominal: usize,
}

impl Layout {
    /// The paper's layouts: 64 B = 8 x 8 B, 1 KB = 10 x 100 B, 4 KB = 40 x 100 B,
    /// 8 KB = 80 x 100 B.
    pub fn for_value_size(size: usize) -> Option<Layout> {
        Some(match size {
            64 => Layout { fields: 8, field_len: 8, nominal: 64 },
            1024 => Layout { fields: 10, field_len: 100, nominal: 1024 },
            4096 => Layout { fields: 40, field_len: 100, nominal: 4096 },
            8192 => Layout { fields: 80, field_len: 100, nominal: 8192 },
            _ => return None,
        })
    }

    /// The nominal value size (64, 1024, 4096 or 8192).
    pub fn value_size(self) -> usize {
        self.nominal
    }
}

/// YCSB's key of record `n` (hashed insert order): `user` and the FNV hash.
pub fn key(n: u64) -> Bytes {
    Bytes::from(format!("user{}", fnv1a_64(n)))
}

/// Field `i`'s name.
pub fn field(i: usize) -> Bytes {
    Bytes::from(format!("field{i}"))
}

/// A field value of `len` bytes, derived from the record, field and version so a
/// read can be checked without a copy of the data.
pub fn value(record: u64, field: usize, version: u64, len: usize) -> Bytes {
    let seed = fnv1a_64(record ^ (field as u64) << 40 ^ version << 52);
    let mut out = Vec::with_capacity(len);
    let mut x = seed | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Printable bytes, as YCSB's values are.
        out.push(b'!' + (x % 90) as u8);
    }
    Bytes::from(out)
}

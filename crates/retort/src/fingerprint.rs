//! Stable fingerprints of files and data: what the caches on disk (teacher logits, a
//! teacher's translations) are keyed by.

use std::path::Path;

use crate::error::{Error, Result};

/// 64-bit FNV-1a: a stable hash (std's hasher may change between Rust releases).
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn bytes(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Adds the whole content of the file `dir/name` (`what` names it in an error).
    pub fn file(&mut self, dir: &Path, name: &str, what: &str) -> Result<()> {
        let path = dir.join(name);
        let data = std::fs::read(&path).map_err(|e| Error::io(&path, e, what))?;
        self.bytes(&data);
        Ok(())
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

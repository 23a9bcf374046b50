//! Support for the on-target tests: a RAM-backed NOR flash with real NOR semantics and a
//! tiny test runner that prints `N passed, N failed` through semihosting.
#![no_std]
#![forbid(unsafe_code)]

use cortex_m_semihosting::hprintln;
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash, check_erase, check_read, check_write,
};

/// A NOR flash in RAM: `SECTORS` erase sectors of `ERASE` bytes, 4-byte program unit.
/// Erase sets a sector to 0xFF; programming can only clear bits (new = old & data), as on
/// real NOR, so a store that relies on rewriting programmed bytes fails here too.
pub struct RamFlash<const SIZE: usize, const ERASE: usize> {
    mem: [u8; SIZE],
    /// Program operations so far.
    pub programs: u32,
    /// Sector erases so far.
    pub erases: u32,
}

impl<const SIZE: usize, const ERASE: usize> RamFlash<SIZE, ERASE> {
    const VALID: () = assert!(SIZE.is_multiple_of(ERASE) && SIZE / ERASE >= 2);

    /// A fully erased flash.
    pub const fn new() -> Self {
        let () = Self::VALID;
        Self {
            mem: [0xFF; SIZE],
            programs: 0,
            erases: 0,
        }
    }

    /// The raw image (e.g. to remount a copy).
    pub fn image(&self) -> &[u8; SIZE] {
        &self.mem
    }
}

impl<const SIZE: usize, const ERASE: usize> Default for RamFlash<SIZE, ERASE> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const SIZE: usize, const ERASE: usize> ErrorType for RamFlash<SIZE, ERASE> {
    type Error = NorFlashErrorKind;
}

impl<const SIZE: usize, const ERASE: usize> ReadNorFlash for RamFlash<SIZE, ERASE> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        check_read(self, offset, bytes.len())?;
        let o = offset as usize;
        bytes.copy_from_slice(&self.mem[o..o + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        SIZE
    }
}

impl<const SIZE: usize, const ERASE: usize> NorFlash for RamFlash<SIZE, ERASE> {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        check_erase(self, from, to)?;
        self.mem[from as usize..to as usize].fill(0xFF);
        self.erases += (to - from) / ERASE as u32;
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        check_write(self, offset, bytes.len())?;
        let o = offset as usize;
        for (m, b) in self.mem[o..o + bytes.len()].iter_mut().zip(bytes) {
            *m &= *b;
        }
        self.programs += 1;
        Ok(())
    }
}

/// One on-target test.
pub type Test = (&'static str, fn());

/// Runs the tests in order, printing one line each and `N passed, 0 failed` last. A failing
/// assertion panics, and `panic-semihosting` prints it and exits QEMU with status 1, which
/// fails `cargo test`.
pub fn run(suite: &str, tests: &[Test]) -> usize {
    hprintln!("sensor-spool on-target Rust tests: {}", suite);
    for (name, f) in tests {
        f();
        hprintln!("test {} ... ok", name);
    }
    hprintln!("{} passed, 0 failed", tests.len());
    tests.len()
}

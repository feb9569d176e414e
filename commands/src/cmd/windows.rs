//! The user's own MMIO mappings (`mem map`, `bar map`), so `mem unmap` / `bar unmap` can
//! release exactly what the user mapped and never a driver's use of the same range (the
//! mapper counts uses of a range without knowing whose they are).

use alloc::vec::Vec;

#[derive(Default)]
pub struct UserWindows {
    /// `(phys, len, maps)`: maps not yet unmapped, per exact range.
    ranges: Vec<(u64, u64, u32)>,
}

impl UserWindows {
    /// The user mapped `[phys, phys+len)` once more.
    pub fn mapped(&mut self, phys: u64, len: u64) {
        match self.ranges.iter_mut().find(|r| (r.0, r.1) == (phys, len)) {
            Some(range) => range.2 += 1,
            None => self.ranges.push((phys, len, 1)),
        }
    }

    /// Takes one user map of exactly `[phys, phys+len)`: the maps left, or `None` if the
    /// user holds none.
    pub fn take(&mut self, phys: u64, len: u64) -> Option<u32> {
        let index = self.ranges.iter().position(|r| (r.0, r.1) == (phys, len))?;
        let range = &mut self.ranges[index];
        range.2 -= 1;
        let left = range.2;
        if left == 0 {
            self.ranges.remove(index);
        }
        Some(left)
    }

    /// The user's ranges (for the error that names them).
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|r| (r.0, r.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_count_down_per_exact_range() {
        let mut w = UserWindows::default();
        w.mapped(0x1000, 0x1000);
        w.mapped(0x1000, 0x1000);
        w.mapped(0x1000, 0x2000);
        assert_eq!(w.take(0x1000, 0x1000), Some(1));
        assert_eq!(w.take(0x1000, 0x1000), Some(0));
        assert_eq!(w.take(0x1000, 0x1000), None);
        assert_eq!(w.ranges().collect::<Vec<_>>(), [(0x1000, 0x2000)]);
    }
}

//! Access widths: the one vocabulary for `--width 1|2|4|8` everywhere (memory, config
//! space, ports), so alignment and "value too wide" are judged in one place.

use core::fmt;

/// The size of one register access, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Width {
    W1,
    W2,
    W4,
    W8,
}

impl Width {
    /// Every width, narrowest first.
    pub const ALL: [Width; 4] = [Width::W1, Width::W2, Width::W4, Width::W8];

    /// The width of `bytes` bytes (1, 2, 4 or 8), else `None`.
    pub const fn from_bytes(bytes: u64) -> Option<Width> {
        match bytes {
            1 => Some(Width::W1),
            2 => Some(Width::W2),
            4 => Some(Width::W4),
            8 => Some(Width::W8),
            _ => None,
        }
    }

    pub const fn bytes(self) -> u64 {
        match self {
            Width::W1 => 1,
            Width::W2 => 2,
            Width::W4 => 4,
            Width::W8 => 8,
        }
    }

    /// The largest value an access of this width carries.
    pub const fn max_value(self) -> u64 {
        match self {
            Width::W8 => u64::MAX,
            other => (1u64 << (other.bytes() * 8)) - 1,
        }
    }

    /// Whether `addr` is naturally aligned for this width.
    pub const fn aligned(self, addr: u64) -> bool {
        addr.is_multiple_of(self.bytes())
    }

    /// Hex digits that show a full value of this width.
    pub const fn hex_digits(self) -> usize {
        (self.bytes() * 2) as usize
    }
}

impl fmt::Display for Width {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths() {
        assert_eq!(Width::from_bytes(4), Some(Width::W4));
        assert_eq!(Width::from_bytes(3), None);
        assert_eq!(Width::W2.max_value(), 0xffff);
        assert_eq!(Width::W8.max_value(), u64::MAX);
        assert!(Width::W4.aligned(0x1008) && !Width::W4.aligned(0x1002));
        assert_eq!(Width::W8.hex_digits(), 16);
    }
}

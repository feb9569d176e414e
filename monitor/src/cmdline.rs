//! The monitor's kernel command line (set in the image's grub.cfg).

/// `dma=<size>` from the command line: bytes, or with a K/M/G suffix.
pub fn dma_size_arg(cmdline: &str) -> Option<Result<u64, ()>> {
    let value = cmdline
        .split_whitespace()
        .find_map(|word| word.strip_prefix("dma="))?;
    Some(parse_size(value).ok_or(()))
}

fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 10),
        b'm' | b'M' => (&text[..text.len() - 1], 20),
        b'g' | b'G' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let number = if let Some(hex) = digits.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()?
    } else {
        digits.parse::<u64>().ok()?
    };
    number.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dma_sizes() {
        assert_eq!(dma_size_arg("dma=16M"), Some(Ok(16 << 20)));
        assert_eq!(dma_size_arg("quiet dma=512k"), Some(Ok(512 << 10)));
        assert_eq!(dma_size_arg("dma=1G x"), Some(Ok(1 << 30)));
        assert_eq!(dma_size_arg("dma=0x100000"), Some(Ok(0x100000)));
        assert_eq!(dma_size_arg("dma=4096"), Some(Ok(4096)));
        assert_eq!(dma_size_arg("nodma=1M"), None);
        assert_eq!(dma_size_arg(""), None);
        assert_eq!(dma_size_arg("dma="), Some(Err(())));
        assert_eq!(dma_size_arg("dma=banana"), Some(Err(())));
        assert_eq!(dma_size_arg("dma=99999999999G"), Some(Err(())));
    }
}

//! Fixed-width bit packing for the wire: templates keep 23 bits per coefficient, probes 48,
//! results and shares 10. Values are written least-significant bit first, one after the other,
//! with the last byte padded by zero bits; a reader refuses any other length and non-zero
//! padding, so every value has exactly one encoding.

/// Pack `values` (each below 2^`bits`, higher bits ignored) into ceil(len * bits / 8) bytes.
pub(crate) fn pack(values: impl ExactSizeIterator<Item = u64>, bits: u32) -> Vec<u8> {
    debug_assert!((1..=64).contains(&bits));
    let mask = low_bits(bits);
    let mut out = Vec::with_capacity(packed_len(values.len(), bits));
    let mut buffer: u128 = 0;
    let mut filled = 0u32;
    for value in values {
        buffer |= u128::from(value & mask) << filled;
        filled += bits;
        while filled >= 8 {
            out.push(buffer as u8);
            buffer >>= 8;
            filled -= 8;
        }
    }
    if filled > 0 {
        out.push(buffer as u8);
    }
    out
}

/// The inverse of [`pack`]: exactly `count` values of `bits` bits, or None when the length or
/// the padding is not what [`pack`] writes.
pub(crate) fn unpack(bytes: &[u8], bits: u32, count: usize) -> Option<Vec<u64>> {
    if !(1..=64).contains(&bits) || bytes.len() != packed_len(count, bits) {
        return None;
    }
    let mask = low_bits(bits);
    let mut values = Vec::with_capacity(count);
    let mut buffer: u128 = 0;
    let mut filled = 0u32;
    let mut input = bytes.iter();
    for _ in 0..count {
        while filled < bits {
            buffer |= u128::from(*input.next()?) << filled;
            filled += 8;
        }
        values.push((buffer as u64) & mask);
        buffer >>= bits;
        filled -= bits;
    }
    // Only zero padding may remain.
    (buffer == 0 && input.next().is_none()).then_some(values)
}

pub(crate) const fn packed_len(count: usize, bits: u32) -> usize {
    (count * bits as usize).div_ceil(8)
}

const fn low_bits(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(values in proptest::collection::vec(any::<u64>(), 0..300), bits in 1u32..=64) {
            let masked: Vec<u64> = values.iter().map(|v| v & low_bits(bits)).collect();
            let packed = pack(masked.iter().copied(), bits);
            prop_assert_eq!(packed.len(), packed_len(masked.len(), bits));
            prop_assert_eq!(unpack(&packed, bits, masked.len()), Some(masked));
        }
    }

    #[test]
    fn refuses_wrong_length_and_dirty_padding() {
        let packed = pack([1u64, 2, 3].into_iter(), 10); // 30 bits: 4 bytes, 2 padding bits
        assert!(unpack(&packed, 10, 3).is_some());
        assert!(unpack(&packed[..3], 10, 3).is_none());
        let mut longer = packed.clone();
        longer.push(0);
        assert!(unpack(&longer, 10, 3).is_none());
        let mut dirty = packed;
        dirty[3] |= 0x80;
        assert!(unpack(&dirty, 10, 3).is_none());
    }
}

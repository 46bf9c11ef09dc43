//! Just enough of the binary format to tell whether a module has a `start`
//! section: wasmi runs a start function during instantiation and does not
//! say whether a module has one, and an instance made ahead of its run
//! ([`Prepared::instantiate_ahead`](crate::Prepared::instantiate_ahead)) must
//! not run code before the run's inputs and output are there.

/// The id of the start section.
const START: u8 = 8;

/// Whether `module` (already validated) has a start section. Bytes that do
/// not parse count as having one: the caller then takes the safe path.
pub fn has_start(module: &[u8]) -> bool {
    let Some(mut rest) = module.get(8..) else {
        return true;
    };
    while let Some((&id, after_id)) = rest.split_first() {
        if id == START {
            return true;
        }
        let Some((size, after_size)) = leb128_u32(after_id) else {
            return true;
        };
        let Some(next) = after_size.get(size as usize..) else {
            return true;
        };
        rest = next;
    }
    false
}

/// An unsigned LEB128 value of at most 32 bits and what follows it.
fn leb128_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: [u8; 8] = [0, b'a', b's', b'm', 1, 0, 0, 0];

    #[test]
    fn finds_a_start_section_after_others() {
        // A custom section of 3 bytes, then start (size 1, function 0).
        let mut m = HEADER.to_vec();
        m.extend_from_slice(&[0, 3, 1, b'x', 9, START, 1, 0]);
        assert!(has_start(&m));
    }

    #[test]
    fn no_start_section_and_garbage() {
        let mut m = HEADER.to_vec();
        m.extend_from_slice(&[1, 0x81, 0x00]); // type section, size 1 in two bytes
        m.push(0);
        assert!(!has_start(&m));
        assert!(!has_start(&HEADER));
        // A size past the end, a size that never ends, a short header: "has one".
        assert!(has_start(&[&HEADER[..], &[1, 9, 0]].concat()));
        assert!(has_start(
            &[&HEADER[..], &[1, 0xff, 0xff, 0xff, 0xff, 0xff]].concat()
        ));
        assert!(has_start(&HEADER[..4]));
    }
}

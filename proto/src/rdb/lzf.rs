//! LZF decompression, as Redis's lzf_d.c: the format of compressed strings
//! in RDB payloads (RDB_ENC_LZF). Rampart emits strings uncompressed, so
//! only the decoder is here.

use super::RdbError;

/// The most output one input byte can make: a long back-reference is
/// three bytes for up to 264 output bytes.
pub const MAX_RATIO: usize = 88;

/// Decompresses `input` into exactly `out_len` bytes; anything else (a
/// reference before the start, output longer or shorter than promised) is
/// a format error.
pub fn decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, RdbError> {
    // A declared length no input could produce is refused before any
    // allocation, so a 5-byte payload cannot ask for gigabytes.
    if out_len > input.len().saturating_mul(MAX_RATIO) {
        return Err(RdbError::BadFormat);
    }
    let mut out = Vec::with_capacity(out_len);
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            // A literal run of ctrl + 1 bytes.
            let run = ctrl + 1;
            let literal = input.get(ip..ip + run).ok_or(RdbError::BadFormat)?;
            if out.len() + run > out_len {
                return Err(RdbError::BadFormat);
            }
            out.extend_from_slice(literal);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(ip).ok_or(RdbError::BadFormat)? as usize;
                ip += 1;
            }
            let low = *input.get(ip).ok_or(RdbError::BadFormat)? as usize;
            ip += 1;
            let distance = ((ctrl & 0x1f) << 8) + low + 1;
            len += 2;
            let start = out.len().checked_sub(distance).ok_or(RdbError::BadFormat)?;
            if out.len() + len > out_len {
                return Err(RdbError::BadFormat);
            }
            // The source may overlap the bytes being written (a run), so
            // copy one byte at a time.
            for i in 0..len {
                let b = out[start + i];
                out.push(b);
            }
        }
    }
    if out.len() != out_len {
        return Err(RdbError::BadFormat);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_back_reference() {
        // "abc" literal, then a back-reference of length 6 at distance 3.
        let input = [2, b'a', b'b', b'c', (4 << 5), 2];
        assert_eq!(decompress(&input, 9).unwrap(), b"abcabcabc");
    }

    #[test]
    fn long_back_reference() {
        // "a", then a reference of 7 + 10 + 2 = 19 bytes at distance 1.
        let input = [0, b'a', 7 << 5, 10, 0];
        assert_eq!(decompress(&input, 20).unwrap(), vec![b'a'; 20]);
    }

    #[test]
    fn rejects_bad_input() {
        // Reference before the start of the output.
        assert!(decompress(&[1 << 5, 0], 3).is_err());
        // Truncated literal.
        assert!(decompress(&[5, b'a'], 6).is_err());
        // Shorter or longer than declared.
        assert!(decompress(&[0, b'a'], 2).is_err());
        assert!(decompress(&[1, b'a', b'b'], 1).is_err());
        // Impossible ratio.
        assert!(decompress(&[0, b'a'], 10_000).is_err());
    }
}

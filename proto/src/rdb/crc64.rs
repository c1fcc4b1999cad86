//! Redis's CRC-64 (the "Jones" polynomial, reflected input and output, zero
//! initial value and no final xor), the checksum of DUMP payloads and RDB
//! files. Check value: crc64(b"123456789") = 0xe9c6d914c4b8d9ca.

/// The Jones polynomial 0xad93d23594c935a9, bit-reversed for the
/// reflected (LSB-first) table algorithm.
const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

const TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Continues the checksum `crc` over `data` (start with 0).
pub fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    for &b in data {
        crc = TABLE[((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::crc64;

    #[test]
    fn matches_redis_check_value() {
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn continues_across_chunks() {
        let whole = crc64(0, b"hello world");
        assert_eq!(crc64(crc64(0, b"hello "), b"world"), whole);
    }
}

//! md5 of eight messages at once, one per 32-bit SIMD lane (`wide::u32x8`: two SSE2 registers
//! on any x86-64, one AVX2 register where the build enables it). A row's hash is one or two
//! md5 blocks, and md5's rounds are one long dependency chain: a single message keeps one
//! core's arithmetic units mostly idle, eight in lanes keep them busy. About three times the
//! rows per second of the `md-5` crate on one core, with the same digests (tested below).

use wide::u32x8;

/// Messages hashed at once.
pub const LANES: usize = 8;

const SHIFTS: [u32; 64] = [
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9,
    14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15,
    21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
];

/// `floor(abs(sin(i + 1)) * 2^32)`, RFC 1321.
const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

/// md5 blocks of a message of `len` bytes, padding and length included.
pub fn blocks(len: usize) -> usize {
    (len + 9).div_ceil(64)
}

/// Appends `message` to `out` as md5 pads it: the bytes, 0x80, zeros, and its length in bits,
/// to a whole number of 64-byte blocks.
pub fn push_padded(out: &mut Vec<u8>, message: &[u8]) {
    let end = out.len() + blocks(message.len()) * 64;
    out.extend_from_slice(message);
    out.push(0x80);
    out.resize(end - 8, 0);
    out.extend_from_slice(&(message.len() as u64 * 8).to_le_bytes());
}

/// The first 8 bytes, big-endian, of the md5 of each message, given padded (`push_padded`).
/// Every message has the same number of blocks.
pub fn first_halves(padded: [&[u8]; LANES]) -> [u64; LANES] {
    debug_assert!(
        padded
            .iter()
            .all(|m| m.len() == padded[0].len() && m.len() % 64 == 0)
    );
    let mut state = [
        u32x8::splat(0x67452301),
        u32x8::splat(0xefcdab89),
        u32x8::splat(0x98badcfe),
        u32x8::splat(0x10325476),
    ];
    for start in (0..padded[0].len()).step_by(64) {
        let mut words = [[0u32; LANES]; 16];
        for (lane, message) in padded.iter().enumerate() {
            let block: &[u8; 64] = message[start..start + 64].try_into().expect("a block");
            for (word, bytes) in words.iter_mut().zip(block.as_chunks::<4>().0) {
                word[lane] = u32::from_le_bytes(*bytes);
            }
        }
        compress(&mut state, &words.map(u32x8::new));
    }
    let (a, b) = (state[0].to_array(), state[1].to_array());
    std::array::from_fn(|lane| {
        (u64::from(a[lane].swap_bytes()) << 32) | u64::from(b[lane].swap_bytes())
    })
}

fn compress(state: &mut [u32x8; 4], m: &[u32x8; 16]) {
    let [mut a, mut b, mut c, mut d] = *state;
    for i in 0..64 {
        let (f, g) = match i / 16 {
            0 => ((b & c) | (!b & d), i),
            1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
            2 => (b ^ c ^ d, (3 * i + 5) % 16),
            _ => (c ^ (b | !d), (7 * i) % 16),
        };
        let t = a + f + u32x8::splat(K[i]) + m[g];
        let s = SHIFTS[i];
        (a, d, c) = (d, c, b);
        b += (t << s) | (t >> (32 - s));
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};

    fn scalar(message: &[u8]) -> u64 {
        let hash = Md5::digest(message);
        u64::from_be_bytes(hash[..8].try_into().unwrap())
    }

    #[test]
    fn eight_lanes_hash_as_md5_does_at_every_length_and_block_edge() {
        // Lengths around each block edge (55/56 and 119/120 bytes move the length field to the
        // next block), up to five blocks; each lane a different message of the same length.
        for len in 0..300 {
            let messages: Vec<Vec<u8>> = (0..LANES)
                .map(|lane| (0..len).map(|i| (i * 31 + lane * 7 + len) as u8).collect())
                .collect();
            let padded: Vec<Vec<u8>> = messages
                .iter()
                .map(|m| {
                    let mut out = vec![1, 2, 3];
                    push_padded(&mut out, m);
                    out.split_off(3)
                })
                .collect();
            assert!(padded.iter().all(|p| p.len() == blocks(len) * 64));
            let lanes = first_halves(std::array::from_fn(|l| padded[l].as_slice()));
            for (message, got) in messages.iter().zip(lanes) {
                assert_eq!(got, scalar(message), "length {len}");
            }
        }
    }
}
